package reports

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"stoa.im/stoa/internal/server"
	"stoa.im/stoa/internal/store"
)

// adminCommands registers reports.list, reports.show and reports.resolve
// on the admin socket (`stoa reports ...`).
func (f *feature) adminCommands(s *server.Setup) {
	s.AdminCommand(server.AdminCommand{
		Name: "reports.list", Args: []string{"state", "offender", "limit"}, Optional: []string{"state", "offender", "limit"},
		Help: "List reports, newest first: open ones (default), resolved or all.",
		Run:  f.list,
	})
	s.AdminCommand(server.AdminCommand{
		Name: "reports.show", Args: []string{"id"},
		Help: "Show one report in full.",
		Run:  f.show,
	})
	s.AdminCommand(server.AdminCommand{
		Name: "reports.resolve", Args: []string{"id", "note", "by"}, Optional: []string{"note", "by"},
		Help: "Mark a report resolved, with a note on what was done.",
		Run:  f.resolve,
	})
}

func (f *feature) list(ctx context.Context, args map[string]string) (server.AdminResult, error) {
	filter := store.ReportFilter{State: store.ReportOpen, Offender: args["offender"], Limit: 100}
	switch st := args["state"]; st {
	case "", "open":
	case "resolved":
		filter.State = store.ReportResolved
	case "all":
		filter.State = ""
	default:
		return server.AdminResult{}, fmt.Errorf("state %q: use open, resolved or all", st)
	}
	if l := args["limit"]; l != "" {
		n, err := strconv.Atoi(l)
		if err != nil || n < 1 {
			return server.AdminResult{}, fmt.Errorf("limit %q is not a positive number", l)
		}
		filter.Limit = n
	}
	reps, err := f.st.Reports().List(ctx, filter)
	if err != nil {
		return server.AdminResult{}, err
	}
	lines := make([]string, 0, len(reps))
	for _, r := range reps {
		lines = append(lines, summary(r.ID, r))
	}
	what := string(filter.State)
	if what == "" {
		what = "all"
	}
	msg := fmt.Sprintf("%d reports (%s)", len(reps), what)
	if len(reps) == filter.Limit {
		msg += fmt.Sprintf("; showing the newest %d, use --limit for more", filter.Limit)
	}
	return server.AdminResult{Message: msg, Lines: lines}, nil
}

func (f *feature) report(ctx context.Context, arg string) (store.Report, error) {
	id, err := strconv.ParseInt(strings.TrimPrefix(arg, "#"), 10, 64)
	if err != nil {
		return store.Report{}, fmt.Errorf("%q is not a report number", arg)
	}
	r, err := f.st.Reports().Get(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Report{}, fmt.Errorf("there is no report #%d", id)
	}
	return r, err
}

func (f *feature) show(ctx context.Context, args map[string]string) (server.AdminResult, error) {
	r, err := f.report(ctx, args["id"])
	if err != nil {
		return server.AdminResult{}, err
	}
	lines := []string{
		fmt.Sprintf("report:    #%d", r.ID),
		fmt.Sprintf("filed:     %s", r.Created.UTC().Format(time.RFC3339)),
		fmt.Sprintf("reporter:  %s", r.Reporter),
		fmt.Sprintf("offender:  %s", r.Offender),
		fmt.Sprintf("reason:    %s", r.Reason),
		fmt.Sprintf("source:    %s", r.Source),
		fmt.Sprintf("state:     %s", r.State),
	}
	if r.Text != "" {
		lines = append(lines, "text:      "+strings.ReplaceAll(r.Text, "\n", "\n           "))
	}
	for _, s := range r.StanzaIDs {
		lines = append(lines, fmt.Sprintf("message:   stanza-id %s (archived by %s)", s.ID, s.By))
	}
	if len(r.Evidence) > 0 {
		lines = append(lines, "evidence:  "+string(r.Evidence))
	}
	if r.Forwarded != "" {
		lines = append(lines, "forwarded: "+r.Forwarded)
	}
	if r.State == store.ReportResolved {
		lines = append(lines, fmt.Sprintf("resolved:  %s by %s", r.ResolvedAt.UTC().Format(time.RFC3339), r.ResolvedBy))
		if r.Resolution != "" {
			lines = append(lines, "note:      "+r.Resolution)
		}
	}
	return server.AdminResult{Message: summary(r.ID, r), Lines: lines}, nil
}

func (f *feature) resolve(ctx context.Context, args map[string]string) (server.AdminResult, error) {
	r, err := f.report(ctx, args["id"])
	if err != nil {
		return server.AdminResult{}, err
	}
	by := args["by"]
	if by == "" {
		by = "cli"
	}
	if err := f.st.Reports().Resolve(ctx, r.ID, by, args["note"], f.now().UTC()); err != nil {
		return server.AdminResult{}, err
	}
	f.log.Info("report resolved", "id", r.ID, "by", by, "note", args["note"])
	return server.AdminResult{Message: fmt.Sprintf("report #%d resolved", r.ID)}, nil
}
