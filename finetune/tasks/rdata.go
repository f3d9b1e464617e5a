package tasks

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os/exec"
)

// This file reads data frames out of an R package's lazy-load database
// (data/Rdata.rdx + Rdata.rdb) without R: the XDR serialization format of
// R's serialize.c, for the object types data frames are made of.

// rObj is one deserialised R object.
type rObj struct {
	typ   int
	ints  []int32   // LGLSXP, INTSXP (NA = math.MinInt32)
	reals []float64 // REALSXP
	strs  []string  // STRSXP (NA = "")
	elems []*rObj   // VECSXP, EXPRSXP
	name  string    // CHARSXP text, SYMSXP name
	pairs []rPair   // LISTSXP and friends, in order
	attr  []rPair   // attributes
}

type rPair struct {
	tag string
	val *rObj
}

// R SEXP types (serialize.c).
const (
	rSym      = 1
	rList     = 2
	rClos     = 3
	rEnv      = 4
	rProm     = 5
	rLang     = 6
	rSpecial  = 7
	rBuiltin  = 8
	rChar     = 9
	rLgl      = 10
	rInt      = 13
	rReal     = 14
	rCplx     = 15
	rStr      = 16
	rDot      = 17
	rVec      = 19
	rExpr     = 20
	rExtPtr   = 22
	rWeakRef  = 23
	rRaw      = 24
	rS4       = 25
	rAltrep   = 238
	rAttrList = 239
	rAttrLang = 240
	rBaseEnv  = 241
	rEmptyEnv = 242
	rGlobal   = 253
	rUnbound  = 252
	rMissing  = 251
	rBaseNS   = 250
	rNS       = 249
	rPackage  = 248
	rPersist  = 247
	rNil      = 254
	rRef      = 255
)

type rReader struct {
	b    []byte
	off  int
	refs []*rObj
}

func (r *rReader) int() (int32, error) {
	if r.off+4 > len(r.b) {
		return 0, io.ErrUnexpectedEOF
	}
	v := int32(binary.BigEndian.Uint32(r.b[r.off:]))
	r.off += 4
	return v, nil
}

func (r *rReader) length() (int, error) {
	n, err := r.int()
	if err != nil {
		return 0, err
	}
	if n == -1 { // long vector: two more ints
		hi, err := r.int()
		if err != nil {
			return 0, err
		}
		lo, err := r.int()
		if err != nil {
			return 0, err
		}
		return int(int64(hi)<<32 | int64(uint32(lo))), nil
	}
	if n < 0 {
		return 0, fmt.Errorf("negative length %d", n)
	}
	return int(n), nil
}

func (r *rReader) bytes(n int) ([]byte, error) {
	if n < 0 || r.off+n > len(r.b) {
		return nil, io.ErrUnexpectedEOF
	}
	b := r.b[r.off : r.off+n]
	r.off += n
	return b, nil
}

// unserialize reads an "X\n" (XDR) serialization, versions 2 and 3.
func unserialize(b []byte) (*rObj, error) {
	if !bytes.HasPrefix(b, []byte("X\n")) {
		return nil, errors.New("not an XDR R serialization")
	}
	r := &rReader{b: b, off: 2}
	version, err := r.int()
	if err != nil {
		return nil, err
	}
	if _, err := r.bytes(8); err != nil { // writer and minimal reader versions
		return nil, err
	}
	if version == 3 {
		n, err := r.length()
		if err != nil {
			return nil, err
		}
		if _, err := r.bytes(n); err != nil { // native encoding
			return nil, err
		}
	} else if version != 2 {
		return nil, fmt.Errorf("serialization version %d", version)
	}
	return r.item()
}

func (r *rReader) item() (*rObj, error) {
	flags, err := r.int()
	if err != nil {
		return nil, err
	}
	typ := int(flags & 0xFF)
	hasAttr, hasTag := flags&(1<<9) != 0, flags&(1<<10) != 0
	o := &rObj{typ: typ}
	switch typ {
	case rNil, rGlobal, rUnbound, rMissing, rBaseNS, rEmptyEnv, rBaseEnv:
		return o, nil
	case rRef:
		i := int(flags >> 8)
		if i == 0 {
			v, err := r.int()
			if err != nil {
				return nil, err
			}
			i = int(v)
		}
		if i < 1 || i > len(r.refs) {
			return nil, fmt.Errorf("reference %d of %d", i, len(r.refs))
		}
		return r.refs[i-1], nil
	case rPersist, rNS, rPackage:
		if _, err := r.int(); err != nil { // 0
			return nil, err
		}
		n, err := r.length()
		if err != nil {
			return nil, err
		}
		for range n {
			if _, err := r.item(); err != nil {
				return nil, err
			}
		}
		r.refs = append(r.refs, o)
		return o, nil
	case rSym:
		r.refs = append(r.refs, o)
		c, err := r.item()
		if err != nil {
			return nil, err
		}
		o.name = c.name
		return o, nil
	case rEnv:
		r.refs = append(r.refs, o)
		if _, err := r.int(); err != nil { // locked
			return nil, err
		}
		for range 4 { // enclosure, frame, hash table, attributes
			if _, err := r.item(); err != nil {
				return nil, err
			}
		}
		return o, nil
	case rList, rLang, rClos, rProm, rDot, rAttrList, rAttrLang:
		// A pairlist: read iteratively along the CDR chain.
		cur := o
		for {
			if hasAttr {
				if cur.attr, err = r.pairlist(); err != nil {
					return nil, err
				}
			}
			tag := ""
			if hasTag {
				t, err := r.item()
				if err != nil {
					return nil, err
				}
				tag = t.name
			}
			car, err := r.item()
			if err != nil {
				return nil, err
			}
			o.pairs = append(o.pairs, rPair{tag, car})
			// Peek at the CDR: continue in place while it is another cell
			// of the same kind, recurse otherwise.
			next, err := r.int()
			if err != nil {
				return nil, err
			}
			nt := int(next & 0xFF)
			if nt == typ && (typ == rList || typ == rAttrList) {
				hasAttr, hasTag = next&(1<<9) != 0, next&(1<<10) != 0
				cur = &rObj{}
				continue
			}
			r.off -= 4
			cdr, err := r.item()
			if err != nil {
				return nil, err
			}
			if cdr.typ != rNil {
				o.pairs = append(o.pairs, cdr.pairs...)
			}
			return o, nil
		}
	case rChar:
		n, err := r.int()
		if err != nil {
			return nil, err
		}
		if n == -1 {
			return o, nil // NA_STRING
		}
		b, err := r.bytes(int(n))
		if err != nil {
			return nil, err
		}
		o.name = string(b)
		return o, nil
	case rSpecial, rBuiltin:
		n, err := r.length()
		if err != nil {
			return nil, err
		}
		if _, err := r.bytes(n); err != nil {
			return nil, err
		}
		return o, nil
	case rLgl, rInt:
		n, err := r.length()
		if err != nil {
			return nil, err
		}
		b, err := r.bytes(4 * n)
		if err != nil {
			return nil, err
		}
		o.ints = make([]int32, n)
		for i := range o.ints {
			o.ints[i] = int32(binary.BigEndian.Uint32(b[4*i:]))
		}
	case rReal, rCplx:
		n, err := r.length()
		if err != nil {
			return nil, err
		}
		if typ == rCplx {
			n *= 2
		}
		b, err := r.bytes(8 * n)
		if err != nil {
			return nil, err
		}
		o.reals = make([]float64, n)
		for i := range o.reals {
			o.reals[i] = math.Float64frombits(binary.BigEndian.Uint64(b[8*i:]))
		}
	case rStr:
		n, err := r.length()
		if err != nil {
			return nil, err
		}
		o.strs = make([]string, n)
		for i := range o.strs {
			c, err := r.item()
			if err != nil {
				return nil, err
			}
			o.strs[i] = c.name
		}
	case rVec, rExpr:
		n, err := r.length()
		if err != nil {
			return nil, err
		}
		o.elems = make([]*rObj, n)
		for i := range o.elems {
			if o.elems[i], err = r.item(); err != nil {
				return nil, err
			}
		}
	case rRaw:
		n, err := r.length()
		if err != nil {
			return nil, err
		}
		if _, err := r.bytes(n); err != nil {
			return nil, err
		}
	case rS4:
	case rExtPtr:
		r.refs = append(r.refs, o)
		for range 2 {
			if _, err := r.item(); err != nil {
				return nil, err
			}
		}
	case rWeakRef:
		r.refs = append(r.refs, o)
	case rAltrep:
		return r.altrep()
	default:
		return nil, fmt.Errorf("R object type %d is not supported", typ)
	}
	if hasAttr {
		if o.attr, err = r.pairlist(); err != nil {
			return nil, err
		}
	}
	return o, nil
}

func (r *rReader) pairlist() ([]rPair, error) {
	a, err := r.item()
	if err != nil {
		return nil, err
	}
	return a.pairs, nil
}

// altrep expands the ALTREP classes data frames use: compact integer and
// real sequences and wrapped vectors.
func (r *rReader) altrep() (*rObj, error) {
	info, err := r.item()
	if err != nil {
		return nil, err
	}
	state, err := r.item()
	if err != nil {
		return nil, err
	}
	attr, err := r.item()
	if err != nil {
		return nil, err
	}
	class := ""
	if len(info.pairs) > 0 {
		class = info.pairs[0].val.name
	}
	var o *rObj
	switch class {
	case "compact_intseq", "compact_realseq":
		if len(state.reals) != 3 {
			return nil, fmt.Errorf("ALTREP %s: state of %d numbers", class, len(state.reals))
		}
		n, start, inc := int(state.reals[0]), state.reals[1], state.reals[2]
		if class == "compact_intseq" {
			o = &rObj{typ: rInt, ints: make([]int32, n)}
			for i := range o.ints {
				o.ints[i] = int32(start + float64(i)*inc)
			}
		} else {
			o = &rObj{typ: rReal, reals: make([]float64, n)}
			for i := range o.reals {
				o.reals[i] = start + float64(i)*inc
			}
		}
	case "wrap_integer", "wrap_logical", "wrap_real", "wrap_string", "wrap_complex", "wrap_raw", "wrap_list":
		if len(state.elems) < 1 {
			return nil, fmt.Errorf("ALTREP %s: empty state", class)
		}
		c := *state.elems[0]
		o = &c
	default:
		return nil, fmt.Errorf("ALTREP class %q is not supported", class)
	}
	if attr.typ != rNil {
		o.attr = attr.pairs
	}
	return o, nil
}

func (o *rObj) attribute(name string) *rObj {
	for _, p := range o.attr {
		if p.tag == name {
			return p.val
		}
	}
	return nil
}

// column returns a data frame's column as strings: character vectors as
// they are, factors by their level labels. NA is "".
func (o *rObj) column(name string) ([]string, error) {
	if o.typ != rVec {
		return nil, errors.New("not a data frame (list)")
	}
	names := o.attribute("names")
	if names == nil {
		return nil, errors.New("data frame without names")
	}
	for i, n := range names.strs {
		if n != name {
			continue
		}
		if i >= len(o.elems) {
			break
		}
		c := o.elems[i]
		switch {
		case c.typ == rStr:
			return c.strs, nil
		case c.typ == rInt && c.attribute("levels") != nil:
			levels := c.attribute("levels").strs
			out := make([]string, len(c.ints))
			for k, v := range c.ints {
				if v >= 1 && int(v) <= len(levels) {
					out[k] = levels[v-1]
				}
			}
			return out, nil
		}
		return nil, fmt.Errorf("column %s has R type %d", name, c.typ)
	}
	return nil, fmt.Errorf("no column %s", name)
}

// lazyLoad reads one object of an R lazy-load database from the bytes of
// its index (.rdx, gzip'd serialization) and database (.rdb).
func lazyLoad(rdx, rdb []byte, name string) (*rObj, error) {
	gz, err := gzip.NewReader(bytes.NewReader(rdx))
	var idxBytes []byte
	if err == nil {
		idxBytes, err = io.ReadAll(gz)
	}
	if err != nil {
		// Older indexes use R's own zlib framing: 4-byte length + zlib.
		if len(rdx) < 4 {
			return nil, errors.New("index too short")
		}
		zr, zerr := zlib.NewReader(bytes.NewReader(rdx[4:]))
		if zerr != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
		if idxBytes, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("index: %w", err)
		}
	}
	idx, err := unserialize(idxBytes)
	if err != nil {
		return nil, fmt.Errorf("index: %w", err)
	}
	var vars *rObj
	if idx.typ == rVec {
		if n := idx.attribute("names"); n != nil {
			for i, s := range n.strs {
				if s == "variables" && i < len(idx.elems) {
					vars = idx.elems[i]
				}
			}
		}
	}
	if vars == nil {
		return nil, errors.New("index has no variables")
	}
	names := vars.attribute("names")
	if names == nil {
		return nil, errors.New("index variables have no names")
	}
	for i, s := range names.strs {
		if s != name || i >= len(vars.elems) {
			continue
		}
		pos := vars.elems[i].ints
		if len(pos) != 2 || pos[0] < 0 || pos[1] < 5 || int(pos[0])+int(pos[1]) > len(rdb) {
			return nil, fmt.Errorf("%s: bad position %v", name, pos)
		}
		entry := rdb[pos[0] : pos[0]+pos[1]]
		raw, err := decompressEntry(entry)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		return unserialize(raw)
	}
	return nil, fmt.Errorf("no object %s in the database", name)
}

// decompressEntry undoes R_compress1/3: a 4-byte big-endian length, then
// 'Z' + raw LZMA2 (xz), '0' + stored bytes, or a zlib stream. LZMA2 is
// decoded by the xz program (xz-utils, priority standard in Debian).
func decompressEntry(e []byte) ([]byte, error) {
	n := int(binary.BigEndian.Uint32(e))
	var out []byte
	var err error
	switch e[4] {
	case 'Z':
		cmd := exec.Command("xz", "--decompress", "--stdout", "--format=raw", "--lzma2=dict=64MiB")
		cmd.Stdin = bytes.NewReader(e[5:])
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err = cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("xz: %v: %s", err, bytes.TrimSpace(stderr.Bytes()))
		}
	case '0':
		out = e[5:]
	case '2':
		return nil, errors.New("bzip2-compressed entries are not supported")
	default:
		zr, zerr := zlib.NewReader(bytes.NewReader(e[4:]))
		if zerr != nil {
			return nil, zerr
		}
		out, err = io.ReadAll(zr)
		if err != nil {
			return nil, err
		}
	}
	if len(out) != n {
		return nil, fmt.Errorf("entry decompressed to %d bytes, header says %d", len(out), n)
	}
	return out, nil
}
