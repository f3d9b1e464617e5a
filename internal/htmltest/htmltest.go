// Package htmltest reads parsed HTML in tests: the text under nodes, an
// attribute, the elements of a tag and class. The report page's tests and
// the table's HTML renderer's tests share it.
package htmltest

import (
	"strings"

	"golang.org/x/net/html"
)

// Text is the text content of ns, in document order.
func Text(ns ...*html.Node) string {
	var b strings.Builder
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.TextNode {
			b.WriteString(n.Data)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	for _, n := range ns {
		walk(n)
	}
	return b.String()
}

// Attr is n's attribute key, "" when absent.
func Attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

// All is every element under n (n included) named tag and, when cls is
// set, having class cls.
func All(n *html.Node, tag, cls string) []*html.Node {
	var out []*html.Node
	var walk func(*html.Node)
	walk = func(n *html.Node) {
		if n.Type == html.ElementNode && n.Data == tag && (cls == "" || strings.Contains(" "+Attr(n, "class")+" ", " "+cls+" ")) {
			out = append(out, n)
		}
		for c := n.FirstChild; c != nil; c = c.NextSibling {
			walk(c)
		}
	}
	walk(n)
	return out
}
