package experiments

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/reproml/albert/data"
	"github.com/reproml/albert/model"
	"github.com/reproml/albert/train"
)

// A field is one settable key of a run, addressed by its dotted path:
// "objective", "model.preset", "model.hidden_size", "data.seq_len",
// "train.steps", … Its kind decides how TOML values and --set strings are
// converted.
type field struct {
	path  string
	kind  reflect.Kind // Int, Float64, String or Bool
	index []int        // struct field index inside its section's config (nil for objective / model.preset)
	enum  []string     // allowed values, if an enum
}

// Section names of a run's configuration.
const (
	secModel = "model"
	secData  = "data"
	secTrain = "train"
)

// derived keys cannot be set: they follow from other keys.
var derived = map[string]string{
	"model.sentence_head": "it follows from objective (a sentence head unless objective = \"none\")",
}

var fields = func() map[string]field {
	m := map[string]field{
		"objective":    {path: "objective", kind: reflect.String, enum: []string{"none", "nsp", "sop"}},
		"model.preset": {path: "model.preset", kind: reflect.String, enum: model.PresetNames()},
	}
	add := func(sec string, t reflect.Type) {
		for i := 0; i < t.NumField(); i++ {
			f := t.Field(i)
			tag := strings.Split(f.Tag.Get("toml"), ",")[0]
			if tag == "" || tag == "-" || !f.IsExported() {
				continue
			}
			p := sec + "." + tag
			if _, ok := derived[p]; ok {
				continue
			}
			k := f.Type.Kind()
			switch k {
			case reflect.Int, reflect.Int64, reflect.Float64, reflect.String, reflect.Bool:
			default:
				panic(fmt.Sprintf("experiments: %s has unsupported kind %s", p, k)) // a programming error, caught by any test
			}
			m[p] = field{path: p, kind: k, index: f.Index}
		}
	}
	add(secModel, reflect.TypeFor[model.Config]())
	add(secData, reflect.TypeFor[data.Config]())
	add(secTrain, reflect.TypeFor[train.Config]())
	sh := m["model.sharing"]
	for _, s := range model.Sharings {
		sh.enum = append(sh.enum, string(s))
	}
	m["model.sharing"] = sh
	opt := m["train.optimizer"]
	opt.enum = []string{"lamb", "adamw"}
	m["train.optimizer"] = opt
	return m
}()

// sectionKeys lists the keys of one section (for "unknown key" messages).
func sectionKeys(sec string) []string {
	var ks []string
	for p := range fields {
		if s, k, ok := strings.Cut(p, "."); ok && s == sec {
			ks = append(ks, k)
		}
	}
	sort.Strings(ks)
	return ks
}

// lookupField finds the field at path, or explains why there is none.
func lookupField(path string) (field, error) {
	if why, ok := derived[path]; ok {
		return field{}, fmt.Errorf("cannot be set: %s", why)
	}
	if f, ok := fields[path]; ok {
		return f, nil
	}
	sec, _, ok := strings.Cut(path, ".")
	switch {
	case ok && (sec == secModel || sec == secData || sec == secTrain):
		return field{}, fmt.Errorf("unknown key (known %s keys: %s)", sec, strings.Join(sectionKeys(sec), ", "))
	case path == "seeds" || path == "repeats" || path == "seed":
		return field{}, fmt.Errorf("seeds are not a field: use seeds = [...] or repeats = N")
	}
	return field{}, fmt.Errorf("unknown key (want objective, model.<key>, data.<key>, train.<key> or downstream.finetune.<key>)")
}

// tomlTypeName names a decoded TOML value's type for error messages.
func tomlTypeName(v any) string {
	switch v.(type) {
	case int64:
		return "integer"
	case float64:
		return "float"
	case string:
		return "string"
	case bool:
		return "boolean"
	case []any, []map[string]any:
		return "array"
	case map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}

func kindName(k reflect.Kind) string {
	switch k {
	case reflect.Int, reflect.Int64:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "a boolean"
	}
	return k.String()
}

// convert turns a decoded TOML value into the field's Go value: int, float64,
// string or bool. Integers are accepted for floats; nothing else is coerced.
func (f field) convert(v any) (any, error) {
	var out any
	switch f.kind {
	case reflect.Int, reflect.Int64:
		n, ok := v.(int64)
		if !ok {
			return nil, fmt.Errorf("want %s, got %s %s", kindName(f.kind), tomlTypeName(v), show(v))
		}
		out = int(n)
	case reflect.Float64:
		switch x := v.(type) {
		case float64:
			if math.IsNaN(x) || math.IsInf(x, 0) {
				return nil, fmt.Errorf("want a finite number, got %v", x)
			}
			out = x
		case int64:
			out = float64(x)
		default:
			return nil, fmt.Errorf("want %s, got %s %s", kindName(f.kind), tomlTypeName(v), show(v))
		}
	case reflect.String:
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("want %s, got %s %s", kindName(f.kind), tomlTypeName(v), show(v))
		}
		out = s
	case reflect.Bool:
		b, ok := v.(bool)
		if !ok {
			return nil, fmt.Errorf("want %s, got %s %s", kindName(f.kind), tomlTypeName(v), show(v))
		}
		out = b
	}
	if len(f.enum) > 0 {
		s := out.(string)
		found := false
		for _, e := range f.enum {
			found = found || e == s
		}
		if !found {
			return nil, fmt.Errorf("%q is not one of %s", s, quoteList(f.enum))
		}
	}
	return out, nil
}

// parse converts a --set value string by the field's kind. Strings may be
// quoted or bare.
func (f field) parse(s string) (any, error) {
	s = strings.TrimSpace(s)
	var v any
	switch f.kind {
	case reflect.Int, reflect.Int64:
		n, err := strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("want %s, got %q", kindName(f.kind), s)
		}
		v = n
	case reflect.Float64:
		x, err := strconv.ParseFloat(strings.ReplaceAll(s, "_", ""), 64)
		if err != nil {
			return nil, fmt.Errorf("want %s, got %q", kindName(f.kind), s)
		}
		v = x
	case reflect.Bool:
		b, err := strconv.ParseBool(s)
		if err != nil {
			return nil, fmt.Errorf("want %s, got %q", kindName(f.kind), s)
		}
		v = b
	case reflect.String:
		if u, err := strconv.Unquote(s); err == nil {
			s = u
		}
		v = s
	}
	return f.convert(v)
}

// show renders a value briefly for messages.
func show(v any) string {
	switch x := v.(type) {
	case string:
		return strconv.Quote(x)
	case map[string]any:
		return "{…}"
	case []any:
		return "[…]"
	}
	return fmt.Sprint(v)
}

func quoteList(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = strconv.Quote(s)
	}
	return strings.Join(q, ", ")
}

// cfgs is the mutable configuration of one run while it is being built.
type cfgs struct {
	objective string
	model     model.Config
	data      data.Config
	train     train.Config
}

// set stores value (already converted by f) into c.
func (c *cfgs) set(f field, value any) {
	sec, _, _ := strings.Cut(f.path, ".")
	var rv reflect.Value
	switch {
	case f.path == "objective":
		c.objective = value.(string)
		return
	case f.path == "model.preset":
		return // applied before everything else, see build
	case sec == secModel:
		rv = reflect.ValueOf(&c.model).Elem()
	case sec == secData:
		rv = reflect.ValueOf(&c.data).Elem()
	case sec == secTrain:
		rv = reflect.ValueOf(&c.train).Elem()
	}
	fv := rv.FieldByIndex(f.index)
	switch x := value.(type) {
	case int:
		fv.SetInt(int64(x))
	case float64:
		fv.SetFloat(x)
	case string:
		fv.SetString(x)
	case bool:
		fv.SetBool(x)
	}
}

// get reads the field's current value from c (for labels and scale).
func (c *cfgs) get(path string) any {
	f, ok := fields[path]
	if !ok || f.index == nil {
		if path == "objective" {
			return c.objective
		}
		return nil
	}
	sec, _, _ := strings.Cut(path, ".")
	var rv reflect.Value
	switch sec {
	case secModel:
		rv = reflect.ValueOf(c.model)
	case secData:
		rv = reflect.ValueOf(c.data)
	case secTrain:
		rv = reflect.ValueOf(c.train)
	}
	return rv.FieldByIndex(f.index).Interface()
}
