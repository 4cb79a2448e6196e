package config

import (
	"errors"
	"fmt"
	"maps"
	"math"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// parse decodes data against the registry. go-toml checks the TOML itself
// (syntax, duplicate keys, table redefinitions) and yields a generic tree;
// the unstable parser gives the line of every key; the tree is then decoded
// into the section structs by walking the compiled schema, collecting every
// problem instead of stopping at the first.
func (r *registry) parse(name string, data []byte) (*File, error) {
	var tree map[string]any
	if err := toml.Unmarshal(data, &tree); err != nil {
		return nil, &Error{Problems: []Problem{tomlProblem(name, data, err)}}
	}
	d := &decoder{file: name, lines: keyLines(data)}

	for _, k := range slices.Sorted(maps.Keys(tree)) {
		if _, ok := r.byName[k]; !ok {
			d.unknownTop(r, k, tree[k])
		}
	}

	f := &File{Path: name, sections: make(map[string]any, len(r.sections))}
	for _, s := range r.sections {
		v := reflect.New(s.typ).Elem()
		v.Set(deepCopy(reflect.ValueOf(s.Defaults)))
		before := len(d.problems)
		line := d.lines[s.Name]
		if raw, ok := tree[s.Name]; ok {
			m, ok := raw.(map[string]any)
			if !ok {
				d.add(line, s.Name, "expected a table, got %s", tomlType(raw))
				continue
			}
			d.decodeStruct(s.Name, line, s.st, v, m, false)
		}
		if len(d.problems) == before {
			d.validated(s, line, v)
		}
		f.sections[s.Name] = v.Interface()
	}
	if len(d.problems) > 0 {
		sort.SliceStable(d.problems, func(i, j int) bool {
			// File order; problems without a line (from Validate) last.
			a, b := d.problems[i], d.problems[j]
			la, lb := a.Line, b.Line
			if la == 0 {
				la = math.MaxInt
			}
			if lb == 0 {
				lb = math.MaxInt
			}
			if la != lb {
				return la < lb
			}
			return a.Key < b.Key
		})
		return nil, &Error{Problems: d.problems}
	}
	return f, nil
}

// tomlProblem turns a go-toml error (syntax, or a TOML-level semantic error
// such as a duplicate key) into a Problem.
func tomlProblem(name string, data []byte, err error) Problem {
	var de *toml.DecodeError
	if !errors.As(err, &de) {
		return Problem{File: name, Msg: "invalid TOML: " + err.Error()}
	}
	line, col := de.Position()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	if k := de.Key(); len(k) > 0 {
		return Problem{File: name, Line: line, Key: qualify(data, line, k), Msg: "invalid TOML: " + msg}
	}
	return Problem{File: name, Line: line, Msg: fmt.Sprintf("syntax error: %s (column %d)", msg, col)}
}

// qualify turns the key of a go-toml error on the given line into a full
// dotted key: go-toml gives the key of a key-value relative to its table,
// and the key of a table header in full.
func qualify(data []byte, line int, key []string) string {
	base, prefix := "", ""
	lineAt := lineIndex(data)
	p := unstable.Parser{}
	p.Reset(data)
	for p.NextExpression() {
		e := p.Expression()
		if e.Kind != unstable.Table && e.Kind != unstable.ArrayTable && e.Kind != unstable.KeyValue {
			continue
		}
		path, l := "", 0
		for it := e.Key(); it.Next(); {
			if l == 0 {
				l = lineAt(int(it.Node().Raw.Offset))
			}
			path = joinKey(path, string(it.Node().Data))
		}
		if l > line {
			break
		}
		if l == line {
			if e.Kind == unstable.KeyValue {
				base = prefix
			}
			break
		}
		if e.Kind != unstable.KeyValue {
			prefix = path
		}
	}
	for _, part := range key {
		base = joinKey(base, part)
	}
	return base
}

// lineIndex returns a function mapping a byte offset in data to its
// 1-based line.
func lineIndex(data []byte) func(off int) int {
	starts := []int{0}
	for i, c := range data {
		if c == '\n' {
			starts = append(starts, i+1)
		}
	}
	return func(off int) int {
		return sort.Search(len(starts), func(i int) bool { return starts[i] > off })
	}
}

type decoder struct {
	file     string
	lines    map[string]int // dotted key -> line
	problems []Problem
}

func (d *decoder) add(line int, key, format string, args ...any) {
	d.problems = append(d.problems, Problem{File: d.file, Line: line, Key: key, Msg: fmt.Sprintf(format, args...)})
}

// lineOr returns the line of key, or fallback if the file does not say.
func (d *decoder) lineOr(key string, fallback int) int {
	if l, ok := d.lines[key]; ok {
		return l
	}
	return fallback
}

// unknownTop reports a top-level key that is not a section.
func (d *decoder) unknownTop(r *registry, k string, v any) {
	line := d.lines[k]
	names := make([]string, len(r.sections))
	for i, s := range r.sections {
		names[i] = s.Name
	}
	if _, isTable := v.(map[string]any); isTable {
		d.add(line, joinKey("", k), "unknown section%s", suggest(k, names))
		return
	}
	var owners []string
	for _, s := range r.sections {
		if _, ok := s.st.byName[k]; ok {
			owners = append(owners, "["+s.Name+"]")
		}
	}
	where := "[server]"
	switch {
	case len(owners) == 1:
		where = owners[0]
	case len(owners) > 1:
		where = "one of " + strings.Join(owners, ", ")
	}
	d.add(line, joinKey("", k), "key outside any table (put it under %s)", where)
}

// validated runs the section's Validate method and records its errors.
func (d *decoder) validated(s *compiledSection, line int, v reflect.Value) {
	err := validate(v)
	if err == nil {
		return
	}
	for _, e := range flatten(err) {
		if fe, ok := asFieldError(e); ok && fe.Key != "" {
			key := s.Name + "." + fe.Key
			d.add(d.lineOr(key, line), key, "%s", fe.Msg)
			continue
		}
		d.add(0, s.Name, "%s", e.Error())
	}
}

// decodeStruct decodes table m into struct v (addressable), key by key.
// v holds the defaults, or zero values inside an element of an array of
// tables (zero is true): there, keys the table leaves out must have a zero
// value that their enum and bounds allow.
func (d *decoder) decodeStruct(path string, line int, st *schema, v reflect.Value, m map[string]any, zero bool) {
	for _, k := range slices.Sorted(maps.Keys(m)) {
		key := joinKey(path, k)
		kl := d.lineOr(key, line)
		f, ok := st.byName[k]
		if !ok {
			names := make([]string, len(st.fields))
			for i, f := range st.fields {
				names[i] = f.name
			}
			d.add(kl, key, "unknown key%s", suggest(k, names))
			continue
		}
		d.decodeField(key, kl, f, v.Field(f.index), m[k], zero)
	}
	if !zero {
		return
	}
	for _, f := range st.fields {
		if _, ok := m[f.name]; ok {
			continue
		}
		key := joinKey(path, f.name)
		if f.kind == kStruct {
			d.decodeStruct(key, line, f.sub, v.Field(f.index), nil, true)
			continue
		}
		checkLeaf(f, v.Field(f.index), func(suffix, msg string) {
			d.add(line, key+suffix, "must be set (%s)", msg)
		})
	}
}

func (d *decoder) typeError(line int, key string, f *field, raw any) {
	d.add(line, key, "expected %s, got %s", f.kind.what(), tomlType(raw))
}

// decodeField decodes raw into fv and checks enum and bounds.
func (d *decoder) decodeField(key string, line int, f *field, fv reflect.Value, raw any, zero bool) {
	switch f.kind {
	case kString:
		s, ok := raw.(string)
		if !ok {
			d.typeError(line, key, f, raw)
			return
		}
		fv.SetString(s)
	case kBool:
		b, ok := raw.(bool)
		if !ok {
			d.typeError(line, key, f, raw)
			return
		}
		fv.SetBool(b)
	case kInt:
		n, ok := raw.(int64)
		if !ok {
			d.typeError(line, key, f, raw)
			return
		}
		if fv.OverflowInt(n) {
			d.add(line, key, "%d is out of range for this option", n)
			return
		}
		fv.SetInt(n)
	case kFloat:
		switch x := raw.(type) {
		case float64:
			fv.SetFloat(x)
		case int64:
			fv.SetFloat(float64(x))
		default:
			d.typeError(line, key, f, raw)
			return
		}
	case kDuration:
		s, ok := raw.(string)
		if !ok {
			d.typeError(line, key, f, raw)
			return
		}
		dur, err := parseDuration(s)
		if err != nil {
			d.add(line, key, "%v", err)
			return
		}
		fv.SetInt(int64(dur))
	case kSize:
		switch x := raw.(type) {
		case int64:
			if x < 0 {
				d.add(line, key, "%d is not a valid size (sizes cannot be negative)", x)
				return
			}
			fv.SetInt(x)
		case string:
			sz, err := ParseSize(x)
			if err != nil {
				d.add(line, key, "%v", err)
				return
			}
			fv.SetInt(int64(sz))
		default:
			d.typeError(line, key, f, raw)
			return
		}
	case kStrings:
		arr, ok := raw.([]any)
		if !ok {
			d.typeError(line, key, f, raw)
			return
		}
		out := reflect.Zero(f.typ)
		if len(arr) > 0 {
			out = reflect.MakeSlice(f.typ, len(arr), len(arr))
		}
		good := true
		for i, e := range arr {
			ek := indexKey(key, i)
			s, ok := e.(string)
			if !ok {
				d.add(d.lineOr(ek, line), ek, "expected a string, got %s", tomlType(e))
				good = false
				continue
			}
			if msg := f.checkEnum(s); msg != "" {
				d.add(d.lineOr(ek, line), ek, "%s", msg)
				good = false
				continue
			}
			out.Index(i).SetString(s)
		}
		if good {
			fv.Set(out)
		}
		return
	case kMap:
		m, ok := raw.(map[string]any)
		if !ok {
			d.typeError(line, key, f, raw)
			return
		}
		out := reflect.Zero(f.typ)
		if len(m) > 0 {
			out = reflect.MakeMapWithSize(f.typ, len(m))
		}
		for _, k := range slices.Sorted(maps.Keys(m)) {
			s, ok := m[k].(string)
			if !ok {
				ek := joinKey(key, k)
				d.add(d.lineOr(ek, line), ek, "expected a string, got %s", tomlType(m[k]))
				continue
			}
			out.SetMapIndex(reflect.ValueOf(k).Convert(f.typ.Key()), reflect.ValueOf(s).Convert(f.typ.Elem()))
		}
		fv.Set(out)
		return
	case kStruct:
		m, ok := raw.(map[string]any)
		if !ok {
			d.typeError(line, key, f, raw)
			return
		}
		d.decodeStruct(key, line, f.sub, fv, m, zero)
		return
	case kStructs:
		arr, ok := raw.([]any)
		if !ok {
			d.typeError(line, key, f, raw)
			return
		}
		out := reflect.Zero(f.typ)
		if len(arr) > 0 {
			out = reflect.MakeSlice(f.typ, len(arr), len(arr))
		}
		for i, e := range arr {
			ek := indexKey(key, i)
			el := d.lineOr(ek, line)
			m, ok := e.(map[string]any)
			if !ok {
				d.add(el, ek, "expected a table, got %s", tomlType(e))
				continue
			}
			d.decodeStruct(ek, el, f.sub, out.Index(i), m, true)
		}
		fv.Set(out)
		return
	}
	checkLeaf(f, fv, func(suffix, msg string) {
		k := key + suffix
		d.add(d.lineOr(k, line), k, "%s", msg)
	})
}

// tomlType names the TOML type of a value from go-toml's generic tree.
func tomlType(v any) string {
	switch v.(type) {
	case string:
		return "string"
	case bool:
		return "boolean"
	case int64:
		return "integer"
	case float64:
		return "float"
	case []any:
		return "array"
	case map[string]any:
		return "table"
	case toml.LocalDate:
		return "date"
	case toml.LocalTime:
		return "time"
	case toml.LocalDateTime, time.Time:
		return "date-time"
	}
	return fmt.Sprintf("%T", v)
}

// joinKey appends one key part to a dotted path, quoting it when it is not
// a bare TOML key.
func joinKey(path, part string) string {
	if !isBareKey(part) {
		part = quote(part)
	}
	if path == "" {
		return part
	}
	return path + "." + part
}

// indexKey names element i of the array at path: "path[i]".
func indexKey(path string, i int) string {
	return path + "[" + strconv.Itoa(i) + "]"
}

func isBareKey(s string) bool {
	if s == "" {
		return false
	}
	for i := range len(s) {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// keyLines maps every dotted key of a (valid) TOML document to the line it
// is defined on: key-values to the line of their key, tables to their first
// header (or the first dotted key creating them), elements of arrays to their
// own line, and elements of arrays of tables as "path[i]" to their header.
func keyLines(data []byte) map[string]int {
	lines := map[string]int{}
	lineAt := lineIndex(data)
	lineOf := func(n *unstable.Node) int { return lineAt(int(n.Raw.Offset)) }
	setFirst := func(key string, line int) {
		if _, ok := lines[key]; !ok {
			lines[key] = line
		}
	}
	counts := map[string]int{} // arrays of tables -> elements so far

	var walkKeyValue func(prefix string, kv *unstable.Node)
	var walkValue func(path string, v *unstable.Node, line int)
	walkKeyValue = func(prefix string, kv *unstable.Node) {
		path, line := prefix, 0
		it := kv.Key()
		for it.Next() {
			line = lineOf(it.Node())
			path = joinKey(path, string(it.Node().Data))
			setFirst(path, line)
		}
		walkValue(path, kv.Value(), line)
	}
	walkValue = func(path string, v *unstable.Node, line int) {
		switch v.Kind {
		case unstable.InlineTable:
			it := v.Children()
			for it.Next() {
				if c := it.Node(); c.Kind == unstable.KeyValue {
					walkKeyValue(path, c)
				}
			}
		case unstable.Array:
			it := v.Children()
			i := 0
			for it.Next() {
				c := it.Node()
				if c.Kind == unstable.Comment {
					continue
				}
				el := line
				if c.Kind != unstable.Array {
					el = lineOf(c)
				}
				ek := indexKey(path, i)
				lines[ek] = el
				walkValue(ek, c, el)
				i++
			}
		}
	}

	p := unstable.Parser{}
	p.Reset(data)
	prefix := ""
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			path := ""
			it := e.Key()
			for it.Next() {
				line := lineOf(it.Node())
				path = joinKey(path, string(it.Node().Data))
				if it.IsLast() && e.Kind == unstable.ArrayTable {
					setFirst(path, line)
					n := counts[path]
					counts[path] = n + 1
					path = indexKey(path, n)
					lines[path] = line
				} else if n, ok := counts[path]; ok {
					path = indexKey(path, n-1)
				} else {
					setFirst(path, line)
				}
			}
			prefix = path
		case unstable.KeyValue:
			walkKeyValue(prefix, e)
		}
	}
	return lines
}

// deepCopy copies a config value so that no slice or map is shared; empty
// slices and maps become nil.
func deepCopy(v reflect.Value) reflect.Value {
	switch v.Kind() {
	case reflect.Struct:
		out := reflect.New(v.Type()).Elem()
		out.Set(v)
		for i := range v.NumField() {
			if out.Field(i).CanSet() {
				out.Field(i).Set(deepCopy(v.Field(i)))
			}
		}
		return out
	case reflect.Slice:
		if v.Len() == 0 {
			return reflect.Zero(v.Type())
		}
		out := reflect.MakeSlice(v.Type(), v.Len(), v.Len())
		for i := range v.Len() {
			out.Index(i).Set(deepCopy(v.Index(i)))
		}
		return out
	case reflect.Map:
		if v.Len() == 0 {
			return reflect.Zero(v.Type())
		}
		out := reflect.MakeMapWithSize(v.Type(), v.Len())
		it := v.MapRange()
		for it.Next() {
			out.SetMapIndex(it.Key(), deepCopy(it.Value()))
		}
		return out
	}
	return v
}

// suggest returns ` (did you mean "x"?)` for the candidate closest to k, or
// "" when none is close enough.
func suggest(k string, candidates []string) string {
	norm := func(s string) string { return strings.ReplaceAll(strings.ToLower(s), "-", "_") }
	nk := norm(k)
	limit := 1
	switch {
	case len(nk) > 8:
		limit = 3
	case len(nk) > 3:
		limit = 2
	}
	best, bestDist := "", math.MaxInt
	for _, c := range candidates {
		nc := norm(c)
		dist := editDistance(nk, nc)
		if dist > limit && !strings.HasSuffix(nc, "_"+nk) && !strings.HasPrefix(nc, nk+"_") {
			continue
		}
		if dist < bestDist {
			best, bestDist = c, dist
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf(" (did you mean %q?)", best)
}

// editDistance is the optimal string alignment distance: insertions,
// deletions, substitutions and transpositions of adjacent bytes.
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		if a == b {
			return 0
		}
		return math.MaxInt
	}
	prev2 := make([]int, len(b)+1)
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				cur[j] = min(cur[j], prev2[j-2]+1)
			}
		}
		prev2, prev, cur = prev, cur, prev2
	}
	return prev[len(b)]
}
