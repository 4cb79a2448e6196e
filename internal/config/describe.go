package config

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Describe returns a complete configuration file holding the default value
// of every option, with its help, allowed values, bounds and reload
// behaviour as comments. Parsing it yields the defaults. Empty arrays of
// tables and empty string tables appear as commented-out examples.
//
// It panics if the sections fail Check: a registry test catches that first.
func Describe(sections []Section) string {
	reg := mustCompile(sections)
	w := &tomlWriter{}
	w.comment(`stoa configuration file. Every option is listed with its default value; ` +
		`delete what you do not change, so that improved defaults reach you on upgrade. ` +
		`Options marked "Applied on reload" take effect on SIGHUP; the others need a restart.`)
	w.comment("")
	w.comment(durationSizeHelp)
	for _, s := range reg.sections {
		w.blank()
		w.blank()
		w.comment(s.Help)
		w.line("[" + s.Name + "]")
		w.table(s.Name, s.st, reflect.ValueOf(s.Defaults))
	}
	return w.b.String()
}

const durationSizeHelp = `Durations are strings such as "30s", "5m", "1h30m" or "1d". ` +
	`Sizes are a number of bytes or strings such as "512", "10KB" or "256KiB".`

func mustCompile(sections []Section) *registry {
	reg, err := compile(sections)
	if err != nil {
		panic(err)
	}
	return reg
}

// tomlWriter writes TOML, optionally commented out.
type tomlWriter struct {
	b         strings.Builder
	commented bool
}

func (w *tomlWriter) line(s string) {
	if w.commented {
		w.b.WriteString("# ")
	}
	w.b.WriteString(s)
	w.b.WriteByte('\n')
}

// blank writes an empty line (nothing inside commented-out blocks, which
// stay compact).
func (w *tomlWriter) blank() {
	if !w.commented {
		w.b.WriteByte('\n')
	}
}

// comment writes text as wrapped comment lines; "" writes a lone "#".
func (w *tomlWriter) comment(text string) {
	if text == "" {
		w.line("#")
		return
	}
	for _, l := range wrap(text, 76) {
		w.line("# " + l)
	}
}

// table writes the keys of struct v, then its sub-tables.
func (w *tomlWriter) table(path string, st *schema, v reflect.Value) {
	for _, f := range st.fields {
		if f.isTable() {
			continue
		}
		w.blank()
		w.comment(f.doc())
		w.line(joinKey("", f.name) + " = " + literal(f, v.Field(f.index)))
	}
	for _, f := range st.fields {
		if !f.isTable() {
			continue
		}
		fv := v.Field(f.index)
		p := joinKey(path, f.name)
		w.blank()
		w.comment(f.doc())
		switch f.kind {
		case kStruct:
			w.line("[" + p + "]")
			w.table(p, f.sub, fv)
		case kMap:
			if fv.Len() == 0 {
				was := w.commented
				w.commented = true
				w.line("[" + p + "]")
				w.line(`key = "value"`)
				w.commented = was
				continue
			}
			w.line("[" + p + "]")
			for _, k := range sortedMapKeys(fv) {
				w.line(joinKey("", k) + " = " + quote(fv.MapIndex(reflect.ValueOf(k).Convert(fv.Type().Key())).String()))
			}
		case kStructs:
			if fv.Len() == 0 {
				was := w.commented
				w.commented = true
				w.line("[[" + p + "]]")
				w.table(p, f.sub, example(f.sub))
				w.commented = was
				continue
			}
			for i := range fv.Len() {
				if i > 0 {
					w.blank()
				}
				w.line("[[" + p + "]]")
				w.table(p, f.sub, fv.Index(i))
			}
		}
	}
}

func (f *field) isTable() bool {
	return f.kind == kStruct || f.kind == kStructs || f.kind == kMap
}

// doc is the field's help followed by its allowed values, bounds and
// reload behaviour.
func (f *field) doc() string {
	parts := []string{f.help}
	if len(f.enum) > 0 {
		parts = append(parts, "One of: "+strings.Join(f.enum, ", ")+".")
	}
	if s := f.bounds(); s != "" {
		parts = append(parts, s+".")
	}
	if f.reload && !f.isTable() {
		parts = append(parts, "Applied on reload.")
	}
	return strings.Join(parts, " ")
}

// bounds describes min and max, e.g. "Minimum 1s, maximum 1h".
func (f *field) bounds() string {
	format := func(b bound) string {
		if f.kind == kFloat {
			return formatFloat(b.f)
		}
		return f.formatInt(b.i)
	}
	switch {
	case f.min.set && f.max.set:
		return "Minimum " + format(f.min) + ", maximum " + format(f.max)
	case f.min.set:
		return "Minimum " + format(f.min)
	case f.max.set:
		return "Maximum " + format(f.max)
	}
	return ""
}

// literal renders a field value as a TOML value (inline for tables).
func literal(f *field, v reflect.Value) string {
	switch f.kind {
	case kString:
		return quote(v.String())
	case kBool:
		return strconv.FormatBool(v.Bool())
	case kInt:
		return strconv.FormatInt(v.Int(), 10)
	case kFloat:
		return floatLiteral(v.Float())
	case kDuration:
		return quote(formatDuration(time.Duration(v.Int())))
	case kSize:
		return quote(Size(v.Int()).String())
	case kStrings:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = quote(v.Index(i).String())
		}
		return "[" + strings.Join(parts, ", ") + "]"
	case kMap:
		keys := sortedMapKeys(v)
		if len(keys) == 0 {
			return "{}"
		}
		parts := make([]string, len(keys))
		for i, k := range keys {
			parts[i] = joinKey("", k) + " = " + quote(v.MapIndex(reflect.ValueOf(k).Convert(v.Type().Key())).String())
		}
		return "{ " + strings.Join(parts, ", ") + " }"
	case kStruct:
		return inlineTable(f.sub, v)
	case kStructs:
		parts := make([]string, v.Len())
		for i := range parts {
			parts[i] = inlineTable(f.sub, v.Index(i))
		}
		return "[" + strings.Join(parts, ", ") + "]"
	}
	return ""
}

func inlineTable(st *schema, v reflect.Value) string {
	if len(st.fields) == 0 {
		return "{}"
	}
	parts := make([]string, len(st.fields))
	for i, f := range st.fields {
		parts[i] = joinKey("", f.name) + " = " + literal(f, v.Field(f.index))
	}
	return "{ " + strings.Join(parts, ", ") + " }"
}

func sortedMapKeys(v reflect.Value) []string {
	keys := make([]string, 0, v.Len())
	for _, k := range v.MapKeys() {
		keys = append(keys, k.String())
	}
	slices.Sort(keys)
	return keys
}

func floatLiteral(x float64) string {
	switch {
	case math.IsInf(x, 1):
		return "inf"
	case math.IsInf(x, -1):
		return "-inf"
	case math.IsNaN(x):
		return "nan"
	}
	s := strconv.FormatFloat(x, 'g', -1, 64)
	if !strings.ContainsAny(s, ".e") {
		s += ".0"
	}
	return s
}

// quote renders s as a TOML basic string.
func quote(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch r {
		case '"':
			b.WriteString(`\"`)
		case '\\':
			b.WriteString(`\\`)
		case '\b':
			b.WriteString(`\b`)
		case '\t':
			b.WriteString(`\t`)
		case '\n':
			b.WriteString(`\n`)
		case '\f':
			b.WriteString(`\f`)
		case '\r':
			b.WriteString(`\r`)
		default:
			if r < 0x20 || r == 0x7f {
				fmt.Fprintf(&b, `\u%04X`, r)
			} else {
				b.WriteRune(r)
			}
		}
	}
	b.WriteByte('"')
	return b.String()
}

// wrap splits text into lines of at most width bytes, breaking at spaces.
func wrap(text string, width int) []string {
	var lines []string
	var cur strings.Builder
	for _, word := range strings.Fields(text) {
		if cur.Len() > 0 && cur.Len()+1+len(word) > width {
			lines = append(lines, cur.String())
			cur.Reset()
		}
		if cur.Len() > 0 {
			cur.WriteByte(' ')
		}
		cur.WriteString(word)
	}
	if cur.Len() > 0 {
		lines = append(lines, cur.String())
	}
	return lines
}

// Markdown returns the configuration reference page: a title, an
// introduction, then for each section its help and a table of its options
// (key, type, default, whether a reload applies it, description with allowed
// values and bounds). Nested keys are shown relative to the section
// ("tls.cert_file"); fields of arrays of tables as "certificate[].file".
//
// It panics if the sections fail Check.
func Markdown(sections []Section) string {
	reg := mustCompile(sections)
	var b strings.Builder
	b.WriteString("# Configuration reference\n\n")
	b.WriteString("<!-- Generated from the option registry (internal/config); do not edit. -->\n\n")
	b.WriteString("stoa reads one TOML file. Each section below is a TOML table named after the ")
	b.WriteString("package that owns it; a section left out of the file keeps its defaults, and a ")
	b.WriteString("table that sets only some keys keeps the defaults of the others. Unknown keys, ")
	b.WriteString("wrong types and out-of-range values stop startup with the file, line and key. ")
	b.WriteString("`stoa config describe` prints a complete configuration file with every default.\n\n")
	b.WriteString("Options marked reloadable take effect on SIGHUP; the others need a restart. ")
	b.WriteString(durationSizeHelp + "\n")
	for _, s := range reg.sections {
		fmt.Fprintf(&b, "\n## [%s]\n\n%s\n\n", s.Name, strings.TrimSpace(s.Help))
		b.WriteString("| Key | Type | Default | Reloadable | Description |\n")
		b.WriteString("|-----|------|---------|------------|-------------|\n")
		markdownRows(&b, "", s.st, reflect.ValueOf(s.Defaults))
	}
	return b.String()
}

func markdownRows(b *strings.Builder, path string, st *schema, v reflect.Value) {
	for _, f := range st.fields {
		key := joinKey(path, f.name)
		fv := v.Field(f.index)
		def := ""
		switch {
		case f.kind == kStructs && fv.Len() > 0 && len(literal(f, fv)) > 80:
			def = fmt.Sprintf("%d tables, see `stoa config describe`", fv.Len())
		case f.kind != kStruct:
			def = code(literal(f, fv))
		}
		reload := "no"
		if f.reload {
			reload = "yes"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", code(key), f.kind.typeName(), cell(def), reload, cell(f.description()))
		switch f.kind {
		case kStruct:
			markdownRows(b, key, f.sub, fv)
		case kStructs:
			markdownElementRows(b, key+"[]", f.sub)
		}
	}
}

// markdownElementRows lists the fields of an array of tables' elements,
// whose defaults are zero values, marking those that must be set.
func markdownElementRows(b *strings.Builder, path string, st *schema) {
	for _, f := range st.fields {
		key := joinKey(path, f.name)
		fv := reflect.Zero(f.typ)
		def := ""
		switch f.kind {
		case kStruct:
		default:
			def = code(literal(f, fv))
			checkLeaf(f, fv, func(string, string) { def = "required" })
		}
		reload := "no"
		if f.reload {
			reload = "yes"
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s |\n", code(key), f.kind.typeName(), cell(def), reload, cell(f.description()))
		switch f.kind {
		case kStruct:
			markdownElementRows(b, key, f.sub)
		case kStructs:
			markdownElementRows(b, key+"[]", f.sub)
		}
	}
}

// example is a value for commented-out examples: zero values, except that
// enum fields get their first value and bounded numbers their bound when
// zero is not allowed.
func example(st *schema) reflect.Value {
	v := reflect.New(st.typ).Elem()
	for _, f := range st.fields {
		fv := v.Field(f.index)
		switch f.kind {
		case kStruct:
			fv.Set(example(f.sub))
		case kString:
			if f.checkEnum("") != "" {
				fv.SetString(f.enum[0])
			}
		case kInt, kDuration, kSize:
			if f.min.set && f.min.i > 0 {
				fv.SetInt(f.min.i)
			} else if f.max.set && f.max.i < 0 {
				fv.SetInt(f.max.i)
			}
		case kFloat:
			if f.min.set && f.min.f > 0 {
				fv.SetFloat(f.min.f)
			} else if f.max.set && f.max.f < 0 {
				fv.SetFloat(f.max.f)
			}
		}
	}
	return v
}

// description is the help for the Markdown table, with allowed values and
// bounds.
func (f *field) description() string {
	desc := f.help
	if len(f.enum) > 0 {
		vals := make([]string, len(f.enum))
		for i, e := range f.enum {
			vals[i] = code(e)
		}
		desc += " One of: " + strings.Join(vals, ", ") + "."
	}
	if s := f.bounds(); s != "" {
		desc += " " + s + "."
	}
	return desc
}

// code renders s as inline code.
func code(s string) string {
	if s == "" {
		return "`\"\"`"
	}
	if strings.Contains(s, "`") {
		return "`` " + s + " ``"
	}
	return "`" + s + "`"
}

// cell escapes s for a Markdown table cell.
func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.Join(strings.Fields(s), " ")
}
