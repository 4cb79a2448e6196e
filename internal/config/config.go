// Package config loads stoa's TOML configuration file and holds the option
// registry it is checked against.
//
// The configuration is made of sections. Each section is one TOML table,
// owned by one package (the server core or a feature), and described by a
// Section: a name, a help paragraph and a struct value holding the defaults.
// The struct's fields are the options; their tags give the TOML key, the
// help text for the generated docs, and optional enum values, bounds and
// whether a reload (SIGHUP) applies them:
//
//	type Config struct {
//		Listen  []string `toml:"listen" help:"Addresses to accept client connections on."`
//		Timeout Duration `toml:"timeout" help:"Close idle streams after this long." min:"1s" reload:"true"`
//		Level   string   `toml:"level" help:"Log level." enum:"debug,info,warn,error" reload:"true"`
//	}
//
// Supported field types are string, bool, signed integers, float64,
// []string, Duration (and time.Duration), Size, nested structs (sub-tables),
// slices of structs (arrays of tables) and map[string]string. Named types
// with those underlying kinds work too.
//
// Decoding is strict: unknown keys, wrong types, enum and bound violations
// are all reported together, each as "file:line: section.key: message",
// with a "did you mean" hint for near-miss keys. After decoding, a section
// whose struct has a Validate() error method is validated; a *FieldError
// lets Validate point at one key.
//
// Describe renders the commented default configuration (`stoa config
// describe`); Markdown renders the reference page for the docs; Changed
// compares two loaded files for a reload.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"strconv"
	"strings"
)

// Section is one TOML table of the configuration.
type Section struct {
	Name     string // TOML table name, e.g. "c2s"; must be snake_case and not empty
	Help     string // one paragraph for the docs
	Defaults any    // a struct value (not a pointer) holding the defaults
}

// File is a loaded configuration. It is immutable and safe for concurrent
// use.
type File struct {
	Path     string
	sections map[string]any
}

// Section returns the configuration of the named section: a value of the
// same type as that section's Defaults, or nil if no such section was
// loaded. The value is a copy; empty slices and maps in it are nil.
func (f *File) Section(name string) any {
	if f == nil {
		return nil
	}
	v, ok := f.sections[name]
	if !ok {
		return nil
	}
	return deepCopy(reflect.ValueOf(v)).Interface()
}

// Get returns the named section as a T. It panics if the section was not
// loaded or is not a T: both are programming errors that the registry tests
// catch.
func Get[T any](f *File, name string) T {
	v := f.Section(name)
	t, ok := v.(T)
	if !ok {
		var zero T
		panic(fmt.Sprintf("config: section %q holds %T, not %T", name, v, zero))
	}
	return t
}

// Validator is implemented by section structs that check themselves after
// decoding, for rules that tags cannot express (one field requires another,
// a file must exist, ...). A value receiver is preferred; with a pointer
// receiver, changes Validate makes (normalising a value) are kept.
//
// Return a *FieldError (or several, with errors.Join) to point at a key.
type Validator interface {
	Validate() error
}

// FieldError is an error from Validate about one key. Key is relative to the
// section ("listen", "tls.cert_file", "certificate[1].file"); the loader
// prefixes the file, the line of that key if the file sets it, and the
// section name.
type FieldError struct {
	Key string
	Msg string
}

func (e *FieldError) Error() string { return e.Key + ": " + e.Msg }

// Problem is one mistake found in a configuration file.
type Problem struct {
	File string
	Line int    // 1-based; 0 when the problem has no single line
	Key  string // dotted key such as "c2s.listen" or "tls.certificate[1].file"; may be empty
	Msg  string
}

// Error formats the problem as "file:line: key: msg", leaving out the
// line and key when unknown.
func (p Problem) Error() string {
	var b strings.Builder
	b.WriteString(p.File)
	if p.Line > 0 {
		b.WriteByte(':')
		b.WriteString(strconv.Itoa(p.Line))
	}
	b.WriteString(": ")
	if p.Key != "" {
		b.WriteString(p.Key)
		b.WriteString(": ")
	}
	b.WriteString(p.Msg)
	return b.String()
}

// Error lists every problem found in a configuration file, in file order.
// Load and Parse return it for mistakes in the file (not for registry
// mistakes, which Check reports, nor for an unreadable file).
type Error struct {
	Problems []Problem
}

// Error returns one line per problem.
func (e *Error) Error() string {
	lines := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		lines[i] = p.Error()
	}
	return strings.Join(lines, "\n")
}

// Load reads and decodes the configuration file at path. Sections absent
// from the file get their defaults; a table given in the file overrides the
// defaults key by key (a partial sub-table keeps the defaults of the keys it
// does not set; an array or array of tables replaces the default as a
// whole). Any mistake in the file is returned as an *Error.
func Load(path string, sections []Section) (*File, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	return Parse(path, data, sections)
}

// Parse is Load for a file already in memory; name is used in messages.
func Parse(name string, data []byte, sections []Section) (*File, error) {
	reg, err := compile(sections)
	if err != nil {
		return nil, err
	}
	return reg.parse(name, data)
}

// validate runs the section's Validate method, if any, on v (addressable).
func validate(v reflect.Value) error {
	if val, ok := v.Interface().(Validator); ok {
		return val.Validate()
	}
	if val, ok := v.Addr().Interface().(Validator); ok {
		return val.Validate()
	}
	return nil
}

// flatten splits errors.Join trees into their leaves.
func flatten(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			if e != nil {
				out = append(out, flatten(e)...)
			}
		}
		return out
	}
	return []error{err}
}

// asFieldError reports whether err is or wraps a *FieldError.
func asFieldError(err error) (*FieldError, bool) {
	var fe *FieldError
	ok := errors.As(err, &fe)
	return fe, ok && fe != nil
}
