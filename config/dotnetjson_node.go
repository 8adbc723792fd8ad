package config

import (
	"math"
	"strconv"
	"strings"
)

// The decoding API over parsed .NET configuration JSON, shared by every file format we read.
// Getters are nil-safe: a lookup in an absent object finds nothing, so a decoder can walk
// optional sections without checking each level. Every value a getter returns is marked
// consumed; unusedPaths lists the rest.

// foldKey is the form keys are compared in: .NET compares configuration keys with
// OrdinalIgnoreCase, an upper-casing comparison.
func foldKey(key string) string { return strings.ToUpper(key) }

// path names n as "A.B[2].C", with keys spelled as in the file; the root is "".
func (n *node) path() string {
	if n == nil || n.parent == nil {
		return ""
	}
	parent := n.parent.path()
	switch {
	case n.parent.kind == arrayNode:
		return parent + "[" + strconv.Itoa(n.index) + "]"
	case parent == "":
		return n.key
	default:
		return parent + "." + n.key
	}
}

// keyPath names the member key of n, spelled as in the file when present; "" when n is nil.
func (n *node) keyPath(key string) string {
	if n == nil {
		return ""
	}
	if m := n.fold[foldKey(key)]; m != nil {
		return m.path()
	}
	if p := n.path(); p != "" {
		return p + "." + key
	}
	return key
}

// lookup returns the value of member key (in any letter case) and marks it consumed; nil
// when n is nil, not an object, or has no such key.
func (n *node) lookup(key string) *node {
	if n == nil || n.kind != objectNode {
		return nil
	}
	m := n.fold[foldKey(key)]
	if m != nil {
		m.used = true
	}
	return m
}

// object returns the object at key; nil when the key is absent or null.
func (n *node) object(key string) (*node, error) {
	return n.container(key, objectNode)
}

// array returns the array at key; nil when the key is absent or null. Its elements are
// reached with elements.
func (n *node) array(key string) (*node, error) {
	return n.container(key, arrayNode)
}

func (n *node) container(key string, kind nodeKind) (*node, error) {
	v := n.lookup(key)
	if v == nil || v.kind == nullNode {
		return nil, nil
	}
	if v.kind != kind {
		return nil, v.typeError(kind.String())
	}
	return v, nil
}

// elements returns the elements of array n and marks them all consumed.
func (n *node) elements() []*node {
	if n == nil {
		return nil
	}
	for _, e := range n.elems {
		e.used = true
	}
	return n.elems
}

// allMembers returns the members of object n in file order and marks them all consumed:
// for maps whose keys are data, such as codec parameters.
func (n *node) allMembers() []*node {
	if n == nil {
		return nil
	}
	for _, m := range n.members {
		m.used = true
	}
	return n.members
}

// unusedPaths lists, in file order, the paths of the values no getter consumed. A consumed
// object or array is searched inside; an unconsumed one is reported whole.
func (n *node) unusedPaths() []string {
	out := []string{} // an empty list, not null, in JSON
	n.collectUnused(&out)
	return out
}

func (n *node) collectUnused(out *[]string) {
	children := n.members
	if n.kind == arrayNode {
		children = n.elems
	}
	for _, c := range children {
		if c.used {
			c.collectUnused(out)
		} else {
			*out = append(*out, c.path())
		}
	}
}

// shown is the value as it would appear in a KeyError: strings quoted, containers "".
func (n *node) shown() string {
	switch n.kind {
	case stringNode:
		return strconv.Quote(n.text)
	case numberNode, boolNode:
		return n.text
	case nullNode:
		return "null"
	default:
		return ""
	}
}

func (n *node) typeError(want string) *KeyError {
	return &KeyError{Path: n.path(), Value: n.shown(), Reason: "is " + n.kind.String() + ", expected " + want}
}

func (n *node) valueError(reason string) *KeyError {
	return &KeyError{Path: n.path(), Value: n.shown(), Reason: reason}
}

// unset reports whether v binds to "no value": .NET configuration treats an absent key, null
// and an empty string alike for numbers and booleans.
func (v *node) unset() bool {
	return v == nil || v.kind == nullNode || (v.kind == stringNode && v.text == "")
}

// scalarText returns a scalar as .NET configuration stores it, as text: a number as written,
// a boolean as "true"/"false", null as "".
func (v *node) scalarText() (string, error) {
	if v.kind == objectNode || v.kind == arrayNode {
		return "", v.typeError("a string")
	}
	return v.text, nil
}

// boolValue accepts true/false, or a string of either in any letter case ("True", "false").
func (v *node) boolValue() (bool, error) {
	if v.kind != boolNode && v.kind != stringNode {
		return false, v.typeError("true or false")
	}
	switch strings.ToLower(strings.TrimSpace(v.text)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, v.valueError("is not true or false")
}

// intValue accepts a whole number in lo..hi, given as a number or as a string ("4000").
func (v *node) intValue(lo, hi int64) (int64, error) {
	if v.kind != numberNode && v.kind != stringNode {
		return 0, v.typeError("a whole number")
	}
	i, err := strconv.ParseInt(strings.TrimSpace(v.text), 10, 64)
	if err != nil && !isRangeErr(err) {
		return 0, v.valueError("is not a whole number")
	}
	if err != nil || i < lo || i > hi {
		return 0, v.valueError("is out of range " + strconv.FormatInt(lo, 10) + "-" + strconv.FormatInt(hi, 10))
	}
	return i, nil
}

// floatValue accepts a finite number, given as a number or as a string ("0.5").
func (v *node) floatValue() (float64, error) {
	if v.kind != numberNode && v.kind != stringNode {
		return 0, v.typeError("a number")
	}
	f, err := strconv.ParseFloat(strings.TrimSpace(v.text), 64)
	if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
		return 0, v.valueError("is not a number")
	}
	return f, nil
}

func isRangeErr(err error) bool {
	ne, ok := err.(*strconv.NumError)
	return ok && ne.Err == strconv.ErrRange
}

// optString sets *dst to the scalar at key; an absent key or null leaves *dst alone.
func (n *node) optString(key string, dst *string) error {
	v := n.lookup(key)
	if v == nil || v.kind == nullNode {
		return nil
	}
	s, err := v.scalarText()
	if err != nil {
		return err
	}
	*dst = s
	return nil
}

// optBool sets *dst from the boolean at key; an unset key leaves *dst alone.
func (n *node) optBool(key string, dst *bool) error {
	v := n.lookup(key)
	if v.unset() {
		return nil
	}
	b, err := v.boolValue()
	if err != nil {
		return err
	}
	*dst = b
	return nil
}

// optFloat sets *dst from the number at key; an unset key leaves *dst alone.
func (n *node) optFloat(key string, dst *float64) error {
	v := n.lookup(key)
	if v.unset() {
		return nil
	}
	f, err := v.floatValue()
	if err != nil {
		return err
	}
	*dst = f
	return nil
}

type integer interface {
	~int | ~int32 | ~int64 | ~uint8 | ~uint16 | ~uint32
}

// optInt sets *dst from the whole number in lo..hi at key; an unset key leaves *dst alone.
func optInt[T integer](n *node, key string, lo, hi int64, dst *T) error {
	v := n.lookup(key)
	if v.unset() {
		return nil
	}
	i, err := v.intValue(lo, hi)
	if err != nil {
		return err
	}
	*dst = T(i)
	return nil
}
