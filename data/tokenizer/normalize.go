package tokenizer

import (
	"strings"
	"unicode/utf8"
)

const spaceSymbol = "\u2581" // ▁, SentencePiece's escaped whitespace

// Normalize applies the model's normaliser exactly as SentencePiece does:
// user-defined symbols pass through, every other prefix is rewritten by the
// precompiled rule map (nmt_nfkc by default: NFKC plus whitespace and control
// character rules), extra whitespace is removed, a dummy "▁" is prepended and
// spaces become "▁". Malformed UTF-8 bytes become U+FFFD one byte at a time.
func (m *Model) Normalize(s string) string {
	var out strings.Builder
	out.Grow(len(s) + 8)
	// Leading whitespace.
	if m.removeExtraWhitespace {
		for len(s) > 0 {
			r, n := m.normalizePrefix(s)
			if r != " " {
				break
			}
			s = s[n:]
		}
	}
	if len(s) == 0 {
		return ""
	}
	space := " "
	if m.escapeWhitespace {
		space = spaceSymbol
	}
	if m.addDummyPrefix {
		out.WriteString(space)
	}
	prevSpace := m.removeExtraWhitespace
	for len(s) > 0 {
		r, n := m.normalizePrefix(s)
		for prevSpace && strings.HasPrefix(r, " ") {
			r = r[1:]
		}
		if r != "" {
			if m.escapeWhitespace {
				out.WriteString(strings.ReplaceAll(r, " ", spaceSymbol))
			} else {
				out.WriteString(r)
			}
			prevSpace = strings.HasSuffix(r, " ")
		}
		s = s[n:]
		if !m.removeExtraWhitespace {
			prevSpace = false
		}
	}
	res := out.String()
	if m.removeExtraWhitespace {
		for strings.HasSuffix(res, space) {
			res = res[:len(res)-len(space)]
		}
	}
	return res
}

// normalizePrefix returns the normalised form of the longest rule matching a
// prefix of s and the number of input bytes it consumes.
func (m *Model) normalizePrefix(s string) (string, int) {
	ulen := 0
	m.userDefined.prefixes(s, func(n int, _ int32) { ulen = n })
	if ulen > 0 {
		return s[:ulen], ulen
	}
	if m.charsTrie != nil {
		length, value := m.longestRule(s)
		if length > 0 {
			end := int(value)
			for end < len(m.charsNorm) && m.charsNorm[end] != 0 {
				end++
			}
			return string(m.charsNorm[value:end]), length
		}
	}
	r, n := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError && n <= 1 {
		return "\uFFFD", 1
	}
	return s[:n], n
}

// longestRule is darts-clone's commonPrefixSearch keeping the longest hit.
func (m *Model) longestRule(s string) (length int, value uint32) {
	a := m.charsTrie
	offset := func(u uint32) uint32 { return (u >> 10) << ((u & (1 << 9)) >> 6) }
	pos := offset(a[0])
	for i := 0; i < len(s); i++ {
		pos ^= uint32(s[i])
		if int(pos) >= len(a) {
			return
		}
		u := a[pos]
		if u&((1<<31)|0xFF) != uint32(s[i]) {
			return
		}
		pos ^= offset(u)
		if (u>>8)&1 == 1 {
			if int(pos) >= len(a) {
				return
			}
			length, value = i+1, a[pos]&((1<<31)-1)
		}
	}
	return
}
