package config

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// This file is the tokenizer and parser of .NET configuration JSON: JSON as read by
// Microsoft.Extensions.Configuration.Json (System.Text.Json with comments skipped and trailing
// commas allowed), which encoding/json rejects. The node tree and its typed getters are in
// dotnetjson_node.go.

// maxDepth bounds nesting, so that hostile input cannot exhaust the stack; real
// configuration files nest fewer than ten levels.
const maxDepth = 100

type nodeKind uint8

const (
	nullNode nodeKind = iota
	boolNode
	numberNode
	stringNode
	objectNode
	arrayNode
)

// String names the kind for error messages ("is an object, expected a string").
func (k nodeKind) String() string {
	switch k {
	case boolNode:
		return "a boolean"
	case numberNode:
		return "a number"
	case stringNode:
		return "a string"
	case objectNode:
		return "an object"
	case arrayNode:
		return "an array"
	default:
		return "null"
	}
}

// pos is a 1-based line and column (in characters).
type pos struct{ line, col int }

// node is one value of the tree. Object members and array elements link back to their
// parent, so that a node can name its own path in error messages without storing it.
type node struct {
	kind nodeKind
	// text holds a string's decoded value, a number as written, or "true"/"false".
	text string
	at   pos // where the value starts
	// keyAt is where a member's key starts (the position an editor should jump to).
	keyAt  pos
	parent *node
	key    string // key in the parent object, as written
	index  int    // index in the parent array
	// members keeps an object's members in file order; fold finds them by folded key.
	members []*node
	fold    map[string]*node
	elems   []*node
	// used marks values the typed decoder consumed; the rest are reported as ignored.
	used bool
}

// parser scans data; line and col are the position of data[off].
type parser struct {
	data      []byte
	off       int
	line, col int
}

// parseDotNetJSON parses a .NET configuration file, whose root must be an object. Errors are
// *SyntaxError, or *KeyError for a key given twice in one object (keys are case-insensitive).
func parseDotNetJSON(data []byte) (*node, error) {
	p := &parser{data: data, line: 1, col: 1}
	if bytes.HasPrefix(data, []byte("\uFEFF")) {
		p.off = len("\uFEFF")
	}
	if err := p.skipSpace(); err != nil {
		return nil, err
	}
	if p.eof() {
		return nil, p.errHere("the file is empty, expected '{'")
	}
	if p.data[p.off] != '{' {
		return nil, p.errHere("expected '{' at the start of the file, found " + p.describe())
	}
	root := &node{used: true}
	if err := p.value(root, 0); err != nil {
		return nil, err
	}
	if err := p.skipSpace(); err != nil {
		return nil, err
	}
	if !p.eof() {
		return nil, p.errHere("expected the end of the file after the root object, found " + p.describe())
	}
	return root, nil
}

func (p *parser) eof() bool { return p.off >= len(p.data) }

func (p *parser) here() pos { return pos{p.line, p.col} }

// next consumes one byte. Columns advance on the first byte of each UTF-8 sequence.
func (p *parser) next() {
	b := p.data[p.off]
	p.off++
	switch {
	case b == '\n':
		p.line++
		p.col = 1
	case b&0xC0 != 0x80:
		p.col++
	}
}

func (p *parser) errAt(at pos, msg string) *SyntaxError {
	return &SyntaxError{Line: at.line, Col: at.col, Msg: msg}
}

func (p *parser) errHere(msg string) *SyntaxError { return p.errAt(p.here(), msg) }

// describe names the character at the current position for "found ..." messages.
func (p *parser) describe() string {
	if p.eof() {
		return "the end of the file"
	}
	r, _ := utf8.DecodeRune(p.data[p.off:])
	return strconv.QuoteRune(r)
}

// skipSpace skips JSON whitespace and comments, which may appear wherever whitespace may.
func (p *parser) skipSpace() error {
	for !p.eof() {
		switch p.data[p.off] {
		case ' ', '\t', '\n', '\r':
			p.next()
		case '/':
			if err := p.skipComment(); err != nil {
				return err
			}
		default:
			return nil
		}
	}
	return nil
}

func (p *parser) skipComment() error {
	start := p.here()
	if p.off+1 >= len(p.data) || (p.data[p.off+1] != '/' && p.data[p.off+1] != '*') {
		return p.errHere("expected // or /* after '/'")
	}
	block := p.data[p.off+1] == '*'
	p.next()
	p.next()
	if !block {
		for !p.eof() && p.data[p.off] != '\n' {
			p.next()
		}
		return nil
	}
	for {
		if p.off+1 >= len(p.data) {
			return p.errAt(start, "unterminated /* comment")
		}
		if p.data[p.off] == '*' && p.data[p.off+1] == '/' {
			p.next()
			p.next()
			return nil
		}
		p.next()
	}
}

// value parses the value at the current position into n, whose parent and key are set.
func (p *parser) value(n *node, depth int) error {
	if err := p.skipSpace(); err != nil {
		return err
	}
	if p.eof() {
		return p.errHere("unexpected end of the file, expected a value")
	}
	n.at = p.here()
	c := p.data[p.off]
	switch {
	case c == '{' || c == '[':
		if depth >= maxDepth {
			return p.errHere(fmt.Sprintf("nested deeper than %d levels", maxDepth))
		}
		if c == '{' {
			return p.object(n, depth+1)
		}
		return p.array(n, depth+1)
	case c == '"':
		s, err := p.str()
		n.kind, n.text = stringNode, s
		return err
	case c == '-' || isDigit(c):
		n.kind = numberNode
		return p.number(n)
	case isLetter(c):
		return p.literal(n)
	default:
		return p.errHere("expected a value, found " + p.describe())
	}
}

func (p *parser) object(n *node, depth int) error {
	n.kind = objectNode
	n.fold = make(map[string]*node)
	p.next() // '{'
	for {
		if err := p.skipSpace(); err != nil {
			return err
		}
		if p.eof() {
			return p.errHere(fmt.Sprintf("unexpected end of the file, expected '}' to close the object at line %d:%d", n.at.line, n.at.col))
		}
		if p.data[p.off] == '}' { // also after a trailing comma
			p.next()
			return nil
		}
		m, err := p.member(n, depth)
		if err != nil {
			return err
		}
		if closed, err := p.afterItem('}', "the value of "+strconv.Quote(m.key)); closed || err != nil {
			return err
		}
	}
}

// member parses `"key": value` into a new member of object n.
func (p *parser) member(n *node, depth int) (*node, error) {
	if p.data[p.off] != '"' {
		return nil, p.errHere("expected a key in double quotes or '}', found " + p.describe())
	}
	m := &node{parent: n, keyAt: p.here()}
	key, err := p.str()
	if err != nil {
		return nil, err
	}
	m.key = key
	folded := foldKey(key)
	if first := n.fold[folded]; first != nil {
		return nil, &KeyError{Path: first.path(), Reason: fmt.Sprintf(
			"duplicate key: first at line %d:%d, again at line %d:%d (keys are case-insensitive)",
			first.keyAt.line, first.keyAt.col, m.keyAt.line, m.keyAt.col)}
	}
	if err := p.skipSpace(); err != nil {
		return nil, err
	}
	if p.eof() || p.data[p.off] != ':' {
		return nil, p.errHere(fmt.Sprintf("expected ':' after the key %q, found %s", key, p.describe()))
	}
	p.next()
	if err := p.value(m, depth); err != nil {
		return nil, err
	}
	n.members = append(n.members, m)
	n.fold[folded] = m
	return m, nil
}

// afterItem consumes the comma or the closing bracket that must follow an item and reports
// whether it was the closing bracket.
func (p *parser) afterItem(closer byte, what string) (closed bool, err error) {
	if err := p.skipSpace(); err != nil {
		return false, err
	}
	if p.eof() || (p.data[p.off] != ',' && p.data[p.off] != closer) {
		return false, p.errHere(fmt.Sprintf("expected ',' or '%c' after %s, found %s", closer, what, p.describe()))
	}
	closed = p.data[p.off] == closer
	p.next()
	return closed, nil
}

func (p *parser) array(n *node, depth int) error {
	n.kind = arrayNode
	p.next() // '['
	for {
		if err := p.skipSpace(); err != nil {
			return err
		}
		if p.eof() {
			return p.errHere(fmt.Sprintf("unexpected end of the file, expected ']' to close the array at line %d:%d", n.at.line, n.at.col))
		}
		if p.data[p.off] == ']' { // also after a trailing comma
			p.next()
			return nil
		}
		e := &node{parent: n, index: len(n.elems)}
		if err := p.value(e, depth); err != nil {
			return err
		}
		n.elems = append(n.elems, e)
		if closed, err := p.afterItem(']', "an array element"); closed || err != nil {
			return err
		}
	}
}

// literal parses true, false or null. A word is read whole so that `True` or an unquoted
// string gets a message about itself rather than about its second letter.
func (p *parser) literal(n *node) error {
	start := p.here()
	from := p.off
	for !p.eof() && (isLetter(p.data[p.off]) || isDigit(p.data[p.off]) || p.data[p.off] == '_') {
		p.next()
	}
	switch word := string(p.data[from:p.off]); word {
	case "true", "false":
		n.kind, n.text = boolNode, word
		return nil
	case "null":
		n.kind = nullNode
		return nil
	default:
		return p.errAt(start, fmt.Sprintf("expected a value, found %s (literals are true, false and null; strings need double quotes)", word))
	}
}

// number checks the JSON number grammar and keeps the number as written.
func (p *parser) number(n *node) error {
	start := p.here()
	from := p.off
	if p.data[p.off] == '-' {
		p.next()
	}
	switch {
	case p.eof() || !isDigit(p.data[p.off]):
		return p.errHere("expected a digit, found " + p.describe())
	case p.data[p.off] == '0':
		p.next()
	default:
		p.digits()
	}
	if !p.eof() && p.data[p.off] == '.' {
		p.next()
		if p.eof() || !isDigit(p.data[p.off]) {
			return p.errHere("expected a digit after '.', found " + p.describe())
		}
		p.digits()
	}
	if !p.eof() && (p.data[p.off] == 'e' || p.data[p.off] == 'E') {
		p.next()
		if !p.eof() && (p.data[p.off] == '+' || p.data[p.off] == '-') {
			p.next()
		}
		if p.eof() || !isDigit(p.data[p.off]) {
			return p.errHere("expected a digit in the exponent, found " + p.describe())
		}
		p.digits()
	}
	if !p.eof() && (isLetter(p.data[p.off]) || isDigit(p.data[p.off]) || p.data[p.off] == '.') {
		return p.errAt(start, "invalid number (JSON numbers have no leading zeros, hex or trailing letters)")
	}
	n.text = string(p.data[from:p.off])
	return nil
}

func (p *parser) digits() {
	for !p.eof() && isDigit(p.data[p.off]) {
		p.next()
	}
}

// str parses a double-quoted string at the current position and returns its value.
func (p *parser) str() (string, error) {
	start := p.here()
	p.next() // opening quote
	var b strings.Builder
	for {
		if p.eof() {
			return "", p.errAt(start, "unterminated string")
		}
		c := p.data[p.off]
		switch {
		case c == '"':
			p.next()
			return b.String(), nil
		case c == '\\':
			r, err := p.escape()
			if err != nil {
				return "", err
			}
			b.WriteRune(r)
		case c < 0x20:
			return "", p.errHere(fmt.Sprintf("control character %U in a string (a string cannot span lines; write \\n)", c))
		case c < utf8.RuneSelf:
			b.WriteByte(c)
			p.next()
		default:
			r, size := utf8.DecodeRune(p.data[p.off:])
			if r == utf8.RuneError && size == 1 {
				return "", p.errHere("invalid UTF-8 in a string")
			}
			b.Write(p.data[p.off : p.off+size])
			for range size {
				p.next()
			}
		}
	}
}

// escape decodes one backslash escape, joining UTF-16 surrogate pairs.
func (p *parser) escape() (rune, error) {
	at := p.here()
	p.next() // backslash
	if p.eof() {
		return 0, p.errAt(at, "unterminated escape")
	}
	c := p.data[p.off]
	p.next()
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		return p.unicodeEscape(at)
	default:
		return 0, p.errAt(at, fmt.Sprintf("invalid escape \\%c", c))
	}
}

func (p *parser) unicodeEscape(at pos) (rune, error) {
	r, err := p.hex4(at)
	if err != nil || !utf16.IsSurrogate(r) {
		return r, err
	}
	if r >= 0xDC00 || p.off+1 >= len(p.data) || p.data[p.off] != '\\' || p.data[p.off+1] != 'u' {
		return 0, p.errAt(at, "invalid \\u escape: a lone UTF-16 surrogate")
	}
	p.next()
	p.next()
	low, err := p.hex4(at)
	if err != nil {
		return 0, err
	}
	joined := utf16.DecodeRune(r, low)
	if joined == utf8.RuneError {
		return 0, p.errAt(at, "invalid \\u escape: a lone UTF-16 surrogate")
	}
	return joined, nil
}

func (p *parser) hex4(at pos) (rune, error) {
	if p.off+4 > len(p.data) {
		return 0, p.errAt(at, "invalid \\u escape: expected four hex digits")
	}
	v, err := strconv.ParseUint(string(p.data[p.off:p.off+4]), 16, 16)
	if err != nil {
		return 0, p.errAt(at, "invalid \\u escape: expected four hex digits")
	}
	for range 4 {
		p.next()
	}
	return rune(v), nil
}

func isDigit(c byte) bool  { return c >= '0' && c <= '9' }
func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }
