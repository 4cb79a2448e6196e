package main

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"stoa.im/stoa/internal/adminsock"
)

// createAccounts creates the accounts with the configured method. An
// account that already exists counts as existing, not as a failure, so a
// run can be repeated on the same server.
func (b *bench) createAccounts(ctx context.Context) (*AccountsResult, error) {
	cfg := b.cfg
	res := &AccountsResult{Method: cfg.Create}
	if cfg.Create == "none" {
		return res, nil
	}
	var created, existing, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	work := make(chan int)
	var wg sync.WaitGroup
	for range max(1, cfg.CreateConcurrency) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				isNew, err := b.createOne(ctx, i)
				switch {
				case err != nil:
					failed.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
				case isNew:
					created.Add(1)
				default:
					existing.Add(1)
				}
			}
		}()
	}
	b.logf("accounts: creating %d with %s", cfg.Users, cfg.Create)
	for i := range cfg.Users {
		if ctx.Err() != nil {
			break
		}
		work <- i
	}
	close(work)
	wg.Wait()
	res.Created, res.Existing, res.Failed = int(created.Load()), int(existing.Load()), int(failed.Load())
	res.Seconds = time.Since(start).Seconds()
	if s, ok := firstErr.Load().(string); ok {
		res.Error = s
	}
	b.logf("accounts: %d created, %d existed, %d failed in %.1fs %s", res.Created, res.Existing, res.Failed, res.Seconds, res.Error)
	if res.Failed > 0 {
		return res, fmt.Errorf("%d accounts could not be created, first: %s", res.Failed, res.Error)
	}
	return res, nil
}

func (b *bench) createOne(ctx context.Context, i int) (bool, error) {
	user, pass, jid := b.userName(i), b.password(i), b.bareJID(i)
	var cmd *exec.Cmd
	switch b.cfg.Create {
	case "ibr":
		return b.d.register(ctx, user, pass)
	case "stoa-socket":
		// The request `stoa user add` sends, without starting a process
		// per account (for the capacity run's tens of thousands).
		resp, err := adminsock.Call(ctx, b.cfg.StoaSocket, adminsock.Request{Cmd: "user.add",
			Args: map[string]string{"jid": jid, "password": pass}})
		if err != nil {
			return false, fmt.Errorf("%s: %w", jid, err)
		}
		if !resp.OK {
			if strings.Contains(resp.Error, "exist") {
				return false, nil
			}
			return false, fmt.Errorf("%s: %s", jid, resp.Error)
		}
		return true, nil
	case "stoa":
		args := []string{"user", "add", jid, "--password-stdin"}
		if b.cfg.StoaConfig != "" {
			args = append(args, "-c", b.cfg.StoaConfig)
		}
		cmd = exec.CommandContext(ctx, b.cfg.StoaBin, args...)
		cmd.Stdin = strings.NewReader(pass + "\n")
	case "prosodyctl":
		cmd = exec.CommandContext(ctx, "prosodyctl", "register", user, b.cfg.Domain, pass)
	case "ejabberdctl":
		cmd = exec.CommandContext(ctx, "ejabberdctl", "register", user, b.cfg.Domain, pass)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		s := strings.ToLower(string(out))
		if strings.Contains(s, "exist") || strings.Contains(s, "conflict") || strings.Contains(s, "taken") {
			return false, nil
		}
		return false, fmt.Errorf("%s: %v: %s", jid, err, strings.TrimSpace(string(out)))
	}
	return true, nil
}
