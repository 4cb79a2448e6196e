package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// kind is what a config field holds, as seen from the TOML file.
type kind int

const (
	kString   kind = iota // string (or a named string type)
	kBool                 // bool
	kInt                  // signed integer
	kFloat                // float64 or float32
	kStrings              // []string
	kDuration             // Duration or time.Duration
	kSize                 // Size
	kStruct               // nested struct: a sub-table
	kStructs              // slice of struct: an array of tables
	kMap                  // map[string]string: a table of strings
)

// what describes the expected TOML value, for "expected X, got Y" messages.
func (k kind) what() string {
	switch k {
	case kString:
		return "a string"
	case kBool:
		return "a boolean"
	case kInt:
		return "an integer"
	case kFloat:
		return "a number"
	case kStrings:
		return "an array of strings"
	case kDuration:
		return `a duration string like "30s"`
	case kSize:
		return `a size like "256KiB" or a number of bytes`
	case kStruct:
		return "a table"
	case kStructs:
		return "an array of tables"
	case kMap:
		return "a table of strings"
	}
	return "?"
}

// typeName is the type shown in the generated docs.
func (k kind) typeName() string {
	switch k {
	case kString:
		return "string"
	case kBool:
		return "boolean"
	case kInt:
		return "integer"
	case kFloat:
		return "float"
	case kStrings:
		return "array of strings"
	case kDuration:
		return "duration"
	case kSize:
		return "size"
	case kStruct:
		return "table"
	case kStructs:
		return "array of tables"
	case kMap:
		return "table of strings"
	}
	return "?"
}

// bound is an optional min or max. Integers, durations and sizes use i,
// floats use f.
type bound struct {
	set bool
	i   int64
	f   float64
}

// field is one compiled, tagged struct field.
type field struct {
	name   string // TOML key
	index  int    // reflect field index
	goName string
	kind   kind
	typ    reflect.Type
	help   string
	enum   []string
	min    bound
	max    bound
	reload bool    // own tag, or inherited from an enclosing table
	sub    *schema // for kStruct and kStructs
}

// schema is a compiled struct type.
type schema struct {
	typ    reflect.Type
	fields []*field
	byName map[string]*field
}

// compiledSection is a Section with its compiled schema.
type compiledSection struct {
	Section
	typ reflect.Type
	st  *schema
}

// registry is a compiled list of sections.
type registry struct {
	sections []*compiledSection
	byName   map[string]*compiledSection
}

var (
	durationType    = reflect.TypeFor[Duration]()
	stdDurationType = reflect.TypeFor[time.Duration]()
	sizeType        = reflect.TypeFor[Size]()
	keyPattern      = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)
)

// Check reports every mistake in a list of sections: empty or duplicate
// names, Defaults that are not struct values, fields without a toml or help
// tag, unsupported field types, bad enum/min/max/reload tags, and defaults
// outside their own enum or bounds. Load, Parse, Describe and Markdown run it
// first; a registry test should call it too.
func Check(sections []Section) error {
	_, err := compile(sections)
	return err
}

func compile(sections []Section) (*registry, error) {
	r := &registry{byName: make(map[string]*compiledSection, len(sections))}
	var errs []error
	for i, s := range sections {
		label := fmt.Sprintf("section %q", s.Name)
		if s.Name == "" {
			label = fmt.Sprintf("section #%d", i)
			errs = append(errs, fmt.Errorf("config: %s: empty name", label))
			continue
		}
		if !keyPattern.MatchString(s.Name) {
			errs = append(errs, fmt.Errorf("config: %s: name must be snake_case ([a-z][a-z0-9_]*)", label))
			continue
		}
		if _, dup := r.byName[s.Name]; dup {
			errs = append(errs, fmt.Errorf("config: %s: registered twice", label))
			continue
		}
		if s.Help == "" {
			errs = append(errs, fmt.Errorf("config: %s: empty Help", label))
		}
		t := reflect.TypeOf(s.Defaults)
		if t == nil || t.Kind() != reflect.Struct {
			errs = append(errs, fmt.Errorf("config: %s: Defaults must be a struct value, got %v", label, t))
			continue
		}
		var ferrs []error
		st := compileStruct(t, s.Name, false, map[reflect.Type]bool{}, &ferrs)
		if len(ferrs) == 0 {
			checkDefaults(s.Name, st, reflect.ValueOf(s.Defaults), &ferrs)
		}
		if len(ferrs) > 0 {
			errs = append(errs, ferrs...)
			continue
		}
		cs := &compiledSection{Section: s, typ: t, st: st}
		r.sections = append(r.sections, cs)
		r.byName[s.Name] = cs
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return r, nil
}

// compileStruct compiles struct type t found at dotted path.
func compileStruct(t reflect.Type, path string, reload bool, seen map[reflect.Type]bool, errs *[]error) *schema {
	if seen[t] {
		*errs = append(*errs, fmt.Errorf("config: %s: recursive type %v", path, t))
		return nil
	}
	seen[t] = true
	defer delete(seen, t)

	st := &schema{typ: t, byName: map[string]*field{}}
	for i := range t.NumField() {
		sf := t.Field(i)
		where := fmt.Sprintf("%s (%v.%s)", path, t, sf.Name)
		bad := func(format string, args ...any) {
			*errs = append(*errs, fmt.Errorf("config: %s: %s", where, fmt.Sprintf(format, args...)))
		}
		if !sf.IsExported() {
			bad("unexported field; config structs hold only tagged, exported fields")
			continue
		}
		if sf.Anonymous {
			bad("embedded fields are not supported")
			continue
		}
		tag, ok := sf.Tag.Lookup("toml")
		name, _, _ := strings.Cut(tag, ",")
		if !ok || name == "" || name == "-" {
			bad("missing toml tag")
			continue
		}
		if !keyPattern.MatchString(name) {
			bad("toml key %q is not snake_case", name)
			continue
		}
		where = fmt.Sprintf("%s.%s (%v.%s)", path, name, t, sf.Name)
		if _, dup := st.byName[name]; dup {
			bad("duplicate toml key %q", name)
			continue
		}
		f := &field{name: name, index: i, goName: sf.Name, typ: sf.Type, help: strings.TrimSpace(sf.Tag.Get("help"))}
		if f.help == "" {
			bad("missing help tag")
		}
		k, ok := kindOf(sf.Type)
		if !ok {
			bad("unsupported type %v", sf.Type)
			continue
		}
		f.kind = k
		if rt, ok := sf.Tag.Lookup("reload"); ok {
			switch rt {
			case "true":
				f.reload = true
			case "false":
			default:
				bad(`reload tag must be "true" or "false", got %q`, rt)
			}
		}
		f.reload = f.reload || reload
		if e, ok := sf.Tag.Lookup("enum"); ok {
			if k != kString && k != kStrings {
				bad("enum tag on a %s field", k.typeName())
			} else {
				f.enum = strings.Split(e, ",")
				for j := range f.enum {
					f.enum[j] = strings.TrimSpace(f.enum[j])
				}
			}
		}
		for _, b := range []struct {
			tag string
			dst *bound
		}{{"min", &f.min}, {"max", &f.max}} {
			v, ok := sf.Tag.Lookup(b.tag)
			if !ok {
				continue
			}
			if err := parseBound(k, v, b.dst); err != nil {
				bad("%s tag: %v", b.tag, err)
			}
		}
		if f.min.set && f.max.set && f.min.f > f.max.f {
			bad("min is above max")
		}
		switch k {
		case kStruct:
			f.sub = compileStruct(sf.Type, path+"."+name, f.reload, seen, errs)
		case kStructs:
			f.sub = compileStruct(sf.Type.Elem(), path+"."+name+"[]", f.reload, seen, errs)
		}
		st.fields = append(st.fields, f)
		st.byName[name] = f
	}
	return st
}

func kindOf(t reflect.Type) (kind, bool) {
	switch t {
	case durationType, stdDurationType:
		return kDuration, true
	case sizeType:
		return kSize, true
	}
	switch t.Kind() {
	case reflect.String:
		return kString, true
	case reflect.Bool:
		return kBool, true
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return kInt, true
	case reflect.Float32, reflect.Float64:
		return kFloat, true
	case reflect.Struct:
		return kStruct, true
	case reflect.Slice:
		switch t.Elem().Kind() {
		case reflect.String:
			return kStrings, true
		case reflect.Struct:
			return kStructs, true
		}
	case reflect.Map:
		if t.Key().Kind() == reflect.String && t.Elem().Kind() == reflect.String {
			return kMap, true
		}
	}
	return 0, false
}

func parseBound(k kind, s string, b *bound) error {
	switch k {
	case kInt:
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return fmt.Errorf("%q is not an integer", s)
		}
		b.i, b.f = v, float64(v)
	case kFloat:
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return fmt.Errorf("%q is not a number", s)
		}
		b.f = v
	case kDuration:
		v, err := parseDuration(s)
		if err != nil {
			return err
		}
		b.i, b.f = int64(v), float64(v)
	case kSize:
		v, err := ParseSize(s)
		if err != nil {
			return err
		}
		b.i, b.f = int64(v), float64(v)
	default:
		return fmt.Errorf("not allowed on a %s field", k.typeName())
	}
	b.set = true
	return nil
}

// checkDefaults verifies that default values respect their own enum and
// bounds, so that Describe's output always loads.
func checkDefaults(path string, st *schema, v reflect.Value, errs *[]error) {
	for _, f := range st.fields {
		fv := v.Field(f.index)
		p := path + "." + f.name
		switch f.kind {
		case kStruct:
			checkDefaults(p, f.sub, fv, errs)
		case kStructs:
			for i := range fv.Len() {
				checkDefaults(indexKey(p, i), f.sub, fv.Index(i), errs)
			}
		default:
			checkLeaf(f, fv, func(suffix, msg string) {
				*errs = append(*errs, fmt.Errorf("config: %s%s: default %s", p, suffix, msg))
			})
		}
	}
}

// checkLeaf checks a decoded leaf value against the field's enum and
// bounds, calling report for each problem; suffix is "" or an array index
// such as "[2]".
func checkLeaf(f *field, v reflect.Value, report func(suffix, msg string)) {
	switch f.kind {
	case kString:
		if msg := f.checkEnum(v.String()); msg != "" {
			report("", msg)
		}
	case kStrings:
		for i := range v.Len() {
			if msg := f.checkEnum(v.Index(i).String()); msg != "" {
				report("["+strconv.Itoa(i)+"]", msg)
			}
		}
	case kInt, kDuration, kSize:
		n := v.Int()
		switch {
		case f.min.set && n < f.min.i:
			report("", fmt.Sprintf("%s is below the minimum %s", f.formatInt(n), f.formatInt(f.min.i)))
		case f.max.set && n > f.max.i:
			report("", fmt.Sprintf("%s is above the maximum %s", f.formatInt(n), f.formatInt(f.max.i)))
		}
	case kFloat:
		x := v.Float()
		switch {
		case math.IsNaN(x) && (f.min.set || f.max.set):
			report("", "nan is not allowed here")
		case f.min.set && !(x >= f.min.f):
			report("", fmt.Sprintf("%s is below the minimum %s", formatFloat(x), formatFloat(f.min.f)))
		case f.max.set && !(x <= f.max.f):
			report("", fmt.Sprintf("%s is above the maximum %s", formatFloat(x), formatFloat(f.max.f)))
		}
	}
}

func (f *field) checkEnum(s string) string {
	if f.enum == nil {
		return ""
	}
	for _, e := range f.enum {
		if s == e {
			return ""
		}
	}
	return fmt.Sprintf("%s is not one of %s", quote(s), strings.Join(f.enum, ", "))
}

// formatInt formats an integer-like value in the field's unit.
func (f *field) formatInt(n int64) string {
	switch f.kind {
	case kDuration:
		return formatDuration(time.Duration(n))
	case kSize:
		return Size(n).String()
	}
	return strconv.FormatInt(n, 10)
}

func formatFloat(x float64) string {
	return strconv.FormatFloat(x, 'g', -1, 64)
}
