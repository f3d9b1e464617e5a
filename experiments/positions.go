package experiments

import (
	"reflect"
	"regexp"
	"strings"

	"github.com/BurntSushi/toml"
)

// keyLines maps every key of a decoded TOML document to the line it is
// defined on.
//
// BurntSushi/toml (v1.6.0, pinned in go.mod) records each key's position
// while parsing but exports it only inside its own decode errors. We read the
// unexported MetaData.keyInfo map by reflection, which reads and never writes
// it. If a future version changes that layout, keyLines falls back to a
// textual search (TestKeyLines pins the precise behaviour).
func keyLines(md toml.MetaData, src string) map[string]int {
	lines := map[string]int{}
	ki := reflect.ValueOf(&md).Elem().FieldByName("keyInfo")
	if ki.IsValid() && ki.Kind() == reflect.Map && ki.Type().Key().Kind() == reflect.String {
		it := ki.MapRange()
		for it.Next() {
			v := it.Value()
			if v.Kind() != reflect.Struct {
				break
			}
			pos := v.FieldByName("pos")
			if !pos.IsValid() || pos.Kind() != reflect.Struct {
				break
			}
			line := pos.FieldByName("Line")
			if !line.IsValid() || line.Kind() != reflect.Int {
				break
			}
			lines[it.Key().String()] = int(line.Int())
		}
	}
	if len(lines) > 0 {
		return lines
	}
	// Fallback: the first line that defines the key's last component, after
	// its table header if it has one.
	text := strings.Split(src, "\n")
	for _, k := range md.Keys() {
		lines[k.String()] = findKeyLine(text, k)
	}
	return lines
}

var headerRE = regexp.MustCompile(`^\s*\[\[?\s*([^\]]+?)\s*\]\]?`)

func findKeyLine(text []string, k toml.Key) int {
	last := k[len(k)-1]
	table := ""
	for i, l := range text {
		if m := headerRE.FindStringSubmatch(l); m != nil {
			table = strings.ReplaceAll(m[1], `"`, "")
			if table == strings.Join(k, ".") {
				return i + 1
			}
			continue
		}
		t := strings.TrimSpace(l)
		t = strings.Trim(t, `"'`)
		if strings.HasPrefix(t, last) && strings.Contains(t, "=") && strings.HasPrefix(strings.Join(k, "."), table) {
			return i + 1
		}
	}
	return 0
}

// nthHeaderLine is the line of the n-th (0-based) "[[name]]" header, for
// array-of-tables elements whose keys collide in keyInfo.
func nthHeaderLine(src, name string, n int) int {
	re := regexp.MustCompile(`^\s*\[\[\s*` + regexp.QuoteMeta(name) + `\s*\]\]`)
	seen := 0
	for i, l := range strings.Split(src, "\n") {
		if re.MatchString(l) {
			if seen == n {
				return i + 1
			}
			seen++
		}
	}
	return 0
}
