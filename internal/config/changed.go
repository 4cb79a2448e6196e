package config

import "reflect"

// Changed lists the dotted keys ("c2s.timeout", "tls.certificate") whose
// values differ between two loaded files, in registry order, split by
// whether a reload applies them (the reload tag; a table's tag covers its
// keys). Arrays, arrays of tables and string tables compare as a whole. A
// section missing from a file, or a nil file, counts as its defaults.
//
// It panics if the sections fail Check.
func Changed(prev, next *File, sections []Section) (reloadable, restart []string) {
	reg := mustCompile(sections)
	for _, s := range reg.sections {
		a, b := sectionValue(prev, s), sectionValue(next, s)
		diff(s.Name, s.st, a, b, func(key string, reload bool) {
			if reload {
				reloadable = append(reloadable, key)
			} else {
				restart = append(restart, key)
			}
		})
	}
	return reloadable, restart
}

func sectionValue(f *File, s *compiledSection) reflect.Value {
	if f != nil {
		if v, ok := f.sections[s.Name]; ok && reflect.TypeOf(v) == s.typ {
			return reflect.ValueOf(v)
		}
	}
	return deepCopy(reflect.ValueOf(s.Defaults))
}

func diff(path string, st *schema, a, b reflect.Value, report func(key string, reload bool)) {
	for _, f := range st.fields {
		key := joinKey(path, f.name)
		fa, fb := a.Field(f.index), b.Field(f.index)
		if f.kind == kStruct {
			diff(key, f.sub, fa, fb, report)
			continue
		}
		if !equal(fa, fb) {
			report(key, f.reload)
		}
	}
}

// equal is reflect.DeepEqual that treats nil and empty slices and maps as
// equal.
func equal(a, b reflect.Value) bool {
	return reflect.DeepEqual(deepCopy(a).Interface(), deepCopy(b).Interface())
}
