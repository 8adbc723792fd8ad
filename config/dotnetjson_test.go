package config

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func mustParse(t *testing.T, src string) *node {
	t.Helper()
	root, err := parseDotNetJSON([]byte(src))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	return root
}

func TestParseExtensions(t *testing.T) {
	tests := []struct {
		name string
		src  string
	}{
		{"plain", `{"a": {"b": [1, "x", true, null]}}`},
		{"line comments", "// head\n{ // after brace\n\"a\" // before colon\n: // after colon\n{\"b\": [1, // in array\n\"x\", true, null]} // after value\n} // tail"},
		{"block comments", "/* head */{/**/\"a\"/* k */:/* v */{\"b\"/***/:[1,/* e */\"x\",true,null/* end */]}}/* tail\n */"},
		{"trailing commas", `{"a": {"b": [1, "x", true, null,],},}`},
		{"BOM", "\uFEFF{\"a\": {\"b\": [1, \"x\", true, null]}}"},
		{"BOM and comment", "\uFEFF// comment\r\n{\"a\": {\"b\": [1, \"x\", true, null]}}\r\n"},
		{"slashes inside strings", `{"a": {"b": [1, "x", true, null], "url": "https://host//p/*x*/"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			root := mustParse(t, tt.src)
			a, err := root.object("A") // keys are case-insensitive
			if err != nil || a == nil {
				t.Fatalf("object A = %v, %v", a, err)
			}
			b, err := a.array("b")
			if err != nil || b == nil {
				t.Fatalf("array b = %v, %v", b, err)
			}
			var kinds []nodeKind
			for _, e := range b.elements() {
				kinds = append(kinds, e.kind)
			}
			want := []nodeKind{numberNode, stringNode, boolNode, nullNode}
			if !slices.Equal(kinds, want) {
				t.Errorf("element kinds = %v, want %v", kinds, want)
			}
			if url := a.lookup("url"); url != nil && url.text != "https://host//p/*x*/" {
				t.Errorf("url = %q", url.text)
			}
		})
	}
}

func TestParseStrings(t *testing.T) {
	root := mustParse(t, `{"s": "q\" b\\ s\/ \b\f\n\r\t \u00e9 \ud83d\ude00 ключ", "a\u0042": 1, "n": -12.5e+3}`)
	if got, want := root.lookup("s").text, "q\" b\\ s/ \b\f\n\r\t é 😀 ключ"; got != want {
		t.Errorf("s = %q, want %q", got, want)
	}
	if v := root.lookup("AB"); v == nil || v.key != "aB" {
		t.Errorf("escaped key: %+v", v)
	}
	if got := root.lookup("n").text; got != "-12.5e+3" {
		t.Errorf("number kept as %q, want as written", got)
	}
}

func TestParsePositions(t *testing.T) {
	root := mustParse(t, "{\n  \"a\": [10, {\"b\": null}]\n}")
	a := root.lookup("a")
	b := a.elems[1].lookup("b")
	tests := []struct {
		name string
		got  pos
		want pos
	}{
		{"key a", a.keyAt, pos{2, 3}},
		{"value a", a.at, pos{2, 8}},
		{"a[0]", a.elems[0].at, pos{2, 9}},
		{"a[1]", a.elems[1].at, pos{2, 13}},
		{"key b", b.keyAt, pos{2, 14}},
		{"value b", b.at, pos{2, 19}},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s at %d:%d, want %d:%d", tt.name, tt.got.line, tt.got.col, tt.want.line, tt.want.col)
		}
	}
	if got := b.path(); got != "a[1].b" {
		t.Errorf("path = %q", got)
	}
}

func TestParseSyntaxErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"empty", "", "line 1:1: the file is empty, expected '{'"},
		{"only comment", "// nothing\n", "line 2:1: the file is empty, expected '{'"},
		{"array root", "[1]", "line 1:1: expected '{' at the start of the file, found '['"},
		{"unclosed", `{"a": 1`, `line 1:8: expected ',' or '}' after the value of "a", found the end of the file`},
		{"unclosed nested", `{"a": {`, "line 1:8: unexpected end of the file, expected '}' to close the object at line 1:7"},
		{"unclosed array", `{"a": [1,`, "line 1:10: unexpected end of the file, expected ']' to close the array at line 1:7"},
		{"no colon", `{"a" 1}`, `line 1:6: expected ':' after the key "a", found '1'`},
		{"capital True", "{\n  \"a\": True\n}", "line 2:8: expected a value, found True (literals are true, false and null; strings need double quotes)"},
		{"leading zero", `{"a": 01}`, "line 1:7: invalid number (JSON numbers have no leading zeros, hex or trailing letters)"},
		{"newline in string", "{\"a\": \"x\ny\"}", `line 1:9: control character U+000A in a string (a string cannot span lines; write \n)`},
		{"unterminated comment", `{"a": 1 /* never closed }`, "line 1:9: unterminated /* comment"},
		{"double comma", `{"a": [1,,2]}`, "line 1:10: expected a value, found ','"},
		{"comma first", `{,}`, "line 1:2: expected a key in double quotes or '}', found ','"},
		{"unquoted key", `{a: 1}`, "line 1:2: expected a key in double quotes or '}', found 'a'"},
		{"single quotes", `{'a': 1}`, `line 1:2: expected a key in double quotes or '}', found '\''`},
		{"garbage after root", `{"a": 1} x`, "line 1:10: expected the end of the file after the root object, found 'x'"},
		{"columns count characters", `{"ключ": x}`, "line 1:10: expected a value, found x (literals are true, false and null; strings need double quotes)"},
		{"BOM not a column", "\uFEFF{\"a\" 1}", `line 1:6: expected ':' after the key "a", found '1'`},
		{"tab is one column", "{\t\"a\" 1}", `line 1:7: expected ':' after the key "a", found '1'`},
		{"CRLF", "{\r\n\"a\": tru}", "line 2:6: expected a value, found tru (literals are true, false and null; strings need double quotes)"},
		{"bad escape", `{"a": "\q"}`, `line 1:8: invalid escape \q`},
		{"short unicode escape", `{"a": "\u12"}`, `line 1:8: invalid \u escape: expected four hex digits`},
		{"lone surrogate", `{"a": "\ud800"}`, `line 1:8: invalid \u escape: a lone UTF-16 surrogate`},
		{"low surrogate first", `{"a": "\udc00\ud800"}`, `line 1:8: invalid \u escape: a lone UTF-16 surrogate`},
		{"unterminated string", `{"a": "abc`, "line 1:7: unterminated string"},
		{"invalid UTF-8", "{\"a\": \"\xff\"}", "line 1:8: invalid UTF-8 in a string"},
		{"minus alone", `{"a": -}`, "line 1:8: expected a digit, found '}'"},
		{"dot without digits", `{"a": 1.}`, "line 1:9: expected a digit after '.', found '}'"},
		{"empty exponent", `{"a": 1e}`, "line 1:9: expected a digit in the exponent, found '}'"},
		{"lone slash", `{"a": 1}/`, "line 1:9: expected // or /* after '/'"},
		{"too deep", `{"a":` + strings.Repeat("[", 100), "line 1:105: nested deeper than 100 levels"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseDotNetJSON([]byte(tt.src))
			var se *SyntaxError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want a *SyntaxError", err, err)
			}
			if got := se.Error(); got != tt.want {
				t.Errorf("error\n got %s\nwant %s", got, tt.want)
			}
		})
	}
}

func TestParseDepthLimitIsExact(t *testing.T) {
	// The root object and 99 arrays make 100 levels: the most we take.
	src := `{"a":` + strings.Repeat("[", 99) + strings.Repeat("]", 99) + "}"
	mustParse(t, src)
}

func TestParseDuplicateKeys(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want string
	}{
		{"same spelling", `{"a":1,"a":2}`, "a: duplicate key: first at line 1:2, again at line 1:8 (keys are case-insensitive)"},
		{"other case, nested", "{\n  \"A\": {\n    \"RtcMinPort\": 1,\n    \"rtcminport\": 2\n  }\n}",
			"A.RtcMinPort: duplicate key: first at line 3:5, again at line 4:5 (keys are case-insensitive)"},
		{"inside an array element", `{"L": [{}, {"x":1, "X":2}]}`, "L[1].x: duplicate key: first at line 1:13, again at line 1:20 (keys are case-insensitive)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseDotNetJSON([]byte(tt.src))
			var ke *KeyError
			if !errors.As(err, &ke) {
				t.Fatalf("err = %v (%T), want a *KeyError", err, err)
			}
			if got := ke.Error(); got != tt.want {
				t.Errorf("error\n got %s\nwant %s", got, tt.want)
			}
		})
	}
	// Equal keys in different objects are not duplicates.
	mustParse(t, `{"a": {"x": 1}, "b": {"x": 1}, "c": [{"x": 1}, {"x": 1}]}`)
}

// getResult is what a getter left in its destination, and its error text.
type getResult struct {
	b   bool
	i   int
	f   float64
	s   string
	err string
}

// The getters below start from a sentinel value so that the tests see whether "unset" left
// the destination alone.

func boolOf(n *node, key string) func() getResult {
	return func() getResult {
		r := getResult{b: true}
		r.err = keyErrText(n.optBool(key, &r.b))
		return r
	}
}

func intOf(n *node, key string) func() getResult {
	return func() getResult {
		r := getResult{i: 7}
		r.err = keyErrText(optInt(n, key, 0, 65535, &r.i))
		return r
	}
}

func floatOf(n *node, key string) func() getResult {
	return func() getResult {
		r := getResult{f: -1}
		r.err = keyErrText(n.optFloat(key, &r.f))
		return r
	}
}

func stringOf(n *node, key string) func() getResult {
	return func() getResult {
		r := getResult{s: "keep"}
		r.err = keyErrText(n.optString(key, &r.s))
		return r
	}
}

func TestScalarGetters(t *testing.T) {
	root := mustParse(t, `{
		"t": true, "f": "false", "T2": "True", "sp": " TRUE ", "yes": "yes", "one": 1,
		"n": 4000, "s": "4000", "neg": "-1", "frac": "4000.0", "exp": 4e3, "huge": "99999999999999999999",
		"obj": {}, "empty": "", "null": null, "half": "0.5", "nan": "NaN"
	}`)
	tests := []struct {
		name string
		get  func() getResult
		want getResult
	}{
		{"bool true", boolOf(root, "t"), getResult{b: true}},
		{"bool string false", boolOf(root, "F"), getResult{}},
		{"bool string True", boolOf(root, "t2"), getResult{b: true}},
		{"bool spaces", boolOf(root, "sp"), getResult{b: true}},
		{"bool yes", boolOf(root, "yes"), getResult{b: true, err: `yes: "yes" is not true or false`}},
		{"bool number", boolOf(root, "one"), getResult{b: true, err: "one: 1 is a number, expected true or false"}},
		{"bool empty is unset", boolOf(root, "empty"), getResult{b: true}},
		{"bool null is unset", boolOf(root, "null"), getResult{b: true}},
		{"bool absent is unset", boolOf(root, "absent"), getResult{b: true}},
		{"int", intOf(root, "n"), getResult{i: 4000}},
		{"int string", intOf(root, "s"), getResult{i: 4000}},
		{"int below range", intOf(root, "neg"), getResult{i: 7, err: `neg: "-1" is out of range 0-65535`}},
		{"int fraction", intOf(root, "frac"), getResult{i: 7, err: `frac: "4000.0" is not a whole number`}},
		{"int exponent", intOf(root, "exp"), getResult{i: 7, err: "exp: 4e3 is not a whole number"}},
		{"int overflow", intOf(root, "huge"), getResult{i: 7, err: `huge: "99999999999999999999" is out of range 0-65535`}},
		{"int object", intOf(root, "obj"), getResult{i: 7, err: "obj: is an object, expected a whole number"}},
		{"int empty is unset", intOf(root, "empty"), getResult{i: 7}},
		{"int null is unset", intOf(root, "null"), getResult{i: 7}},
		{"float string", floatOf(root, "half"), getResult{f: 0.5}},
		{"float NaN", floatOf(root, "nan"), getResult{f: -1, err: `nan: "NaN" is not a number`}},
		{"float int", floatOf(root, "n"), getResult{f: 4000}},
		{"string of number", stringOf(root, "n"), getResult{s: "4000"}},
		{"string of bool", stringOf(root, "t"), getResult{s: "true"}},
		{"string null keeps", stringOf(root, "null"), getResult{s: "keep"}},
		{"string object", stringOf(root, "obj"), getResult{s: "keep", err: "obj: is an object, expected a string"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.get(); got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func keyErrText(err error) string {
	if err == nil {
		return ""
	}
	var ke *KeyError
	if !errors.As(err, &ke) {
		return "not a KeyError: " + err.Error()
	}
	return ke.Error()
}

func TestContainerTypeErrors(t *testing.T) {
	root := mustParse(t, `{"s": "x", "a": [1], "o": {}, "n": null}`)
	if _, err := root.object("s"); keyErrText(err) != `s: "x" is a string, expected an object` {
		t.Errorf("object(s): %v", err)
	}
	if _, err := root.array("o"); keyErrText(err) != "o: is an object, expected an array" {
		t.Errorf("array(o): %v", err)
	}
	if v, err := root.object("n"); v != nil || err != nil {
		t.Errorf("object(null) = %v, %v; want nil, nil", v, err)
	}
	// Lookups through absent sections find nothing instead of failing.
	var missing *node
	if v, err := missing.object("x"); v != nil || err != nil {
		t.Errorf("nil.object = %v, %v", v, err)
	}
	if got := missing.keyPath("x"); got != "" {
		t.Errorf("nil.keyPath = %q", got)
	}
	if got := root.keyPath("NEW"); got != "NEW" {
		t.Errorf("keyPath of an absent root key = %q", got)
	}
	if got := root.lookup("o").keyPath("Absent"); got != "o.Absent" {
		t.Errorf("keyPath of an absent key = %q", got)
	}
}

// TestUnusedPathsRecorderConfig reads part of the recorder's real config.json with the node
// API, as decodeRecorder does, and checks what is left over.
func TestUnusedPathsRecorderConfig(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("testdata", "wt-docker-recorder-config.json"))
	if err != nil {
		t.Fatal(err)
	}
	root, err := parseDotNetJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	https := root.lookup("service").lookup("KESTREL").lookup("EndPoints").lookup("Https")
	var url, certPath, password string
	var allowInvalid bool
	cert := https.lookup("Certificate")
	for _, err := range []error{
		https.optString("Url", &url), cert.optString("Path", &certPath),
		cert.optString("Password", &password), cert.optBool("AllowInvalid", &allowInvalid),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	recording, _ := root.object("Recording")
	var dir string
	if err := recording.optString("RecordingDir", &dir); err != nil {
		t.Fatal(err)
	}
	clients, _ := recording.array("Clients")
	var slots, startDelay int
	for _, c := range clients.elements() {
		var host, user, pass string
		creds := c.lookup("Credentials")
		for _, err := range []error{
			c.optString("Host", &host), optInt(c, "Slots", 1, 1000, &slots),
			creds.optString("Username", &user), creds.optString("Password", &pass),
			optInt(c.lookup("FfmpegConfig"), "StartDelay", 0, 60000, &startDelay),
		} {
			if err != nil {
				t.Fatal(err)
			}
		}
	}
	if url != "https://*:8300" || certPath != "../certs/recorder.pfx" || !allowInvalid || slots != 5 || startDelay != 4000 {
		t.Errorf("values: url %q cert %q allowInvalid %v slots %d startDelay %d", url, certPath, allowInvalid, slots, startDelay)
	}
	want := []string{
		"Logging",
		"Service.Kestrel.AllowSynchronousIO",
		"Service.Kestrel.Limits",
		"Service.WebSocketOptions",
		"Service.Credentials",
		"Service.FlushAsyncWait",
		"Service.WriteAsyncWait",
		"Service.WorkerThreads",
		"Service.Logging",
		"Recording.ReInitPulseAudioBeforeStartRecorder",
		"Recording.Clients[0].RecordingDir",
		"Recording.Clients[0].FfmpegConfig.CommandOptions",
		"Recording.Clients[0].FfmpegConfig.CommandOutputOptions",
	}
	if got := root.unusedPaths(); !slices.Equal(got, want) {
		t.Errorf("unused paths\n got %q\nwant %q", got, want)
	}
}

func FuzzParse(f *testing.F) {
	files, _ := filepath.Glob(filepath.Join("testdata", "*.json"))
	files = append(files, "default_mediasoup_config.json")
	for _, name := range files {
		data, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	for _, s := range []string{`{}`, `{"a":[1,{"b":"\ud83d\ude00"}],}`, "\uFEFF{/**/}", `{"a":-0.5e-3}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		root, err := parseDotNetJSON(data)
		if err != nil {
			checkErrorType(t, err)
		} else if got := len(root.unusedPaths()); got != len(root.members) {
			t.Fatalf("nothing consumed, yet %d unused paths for %d root keys", got, len(root.members))
		}
		// The media decoder must not panic on anything the parser accepts either.
		if _, err := ParseMedia(data, "fuzz"); err != nil {
			checkErrorType(t, err)
		}
	})
}

func checkErrorType(t *testing.T, err error) {
	t.Helper()
	var se *SyntaxError
	var ke *KeyError
	switch {
	case errors.As(err, &se):
		if se.Line < 1 || se.Col < 1 {
			t.Fatalf("position %d:%d in %v", se.Line, se.Col, err)
		}
	case errors.As(err, &ke):
	default:
		t.Fatalf("error of type %T: %v", err, err)
	}
}
