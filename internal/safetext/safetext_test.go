package safetext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestClean(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		{"plain ASCII is kept", "invalid_grant: the refresh token expired", "invalid_grant: the refresh token expired"},
		{"other scripts are kept", "トークンの有効期限が切れました — срок истёк, ¿qué? 🙂", "トークンの有効期限が切れました — срок истёк, ¿qué? 🙂"},
		{"an OSC ended by BEL goes with its content", "ci\x1b]0;TITLE\x07 ok", "ci ok"},
		{"an OSC ended by ST goes with its content", "a\x1b]52;c;ZXZpbA==\x1b\\b", "ab"},
		{"an OSC ended by the C1 ST goes with its content", "a\x1b]0;T\u009cb", "ab"},
		{"an unended OSC takes the rest with it", "a\x1b]0;TITLE and more", "a"},
		{"an OSC is cut short by another ESC", "a\x1b]0;T\x1b[2Jb", "ab"},
		{"a CSI goes with its parameters", "ci\x1b]0;TITLE\x07\x1b[2J\x1b[1;31mred\x1b[0m", "cired"},
		{"a CSI with private parameters goes", "a\x1b[?1049hb", "ab"},
		{"a CSI as one C1 character goes", "a\u009b2Jb", "ab"},
		{"an OSC as one C1 character goes", "a\u009d0;T\u0007b", "ab"},
		{"a DCS goes with its content", "a\x1bPq#0;2;0;0;0\x1b\\b", "ab"},
		{"a charset designation goes", "a\x1b(Bb", "ab"},
		{"a two-byte escape goes", "a\x1bcb\x1b7c", "abc"},
		{"a lone ESC at the end goes", "a\x1b", "a"},
		{"other C1 characters go", "a\u0085b\u0080c\u009cd", "a bcd"},
		{"C0 controls and DEL go", "a\x00b\x07c\x08d\x7fe", "abcde"},
		{"line breaks and tabs are one space", "first\r\n\tsecond\nthird\u2028fourth", "first second third fourth"},
		{"bidi overrides and isolates go", "file\u202Etxt.exe\u202C \u2066x\u2069", "filetxt.exe x"},
		{"invalid UTF-8 is one replacement per run", "a\xff\xfeb\xc0", "a\uFFFDb\uFFFD"},
		{"a raw C1 byte is invalid UTF-8", "a\x9b2Jb", "a\uFFFD2Jb"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Clean(tc.in)
			if got != tc.want {
				t.Fatalf("Clean(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if Clean(got) != got {
				t.Fatalf("Clean is not idempotent on %q", got)
			}
		})
	}
}

func TestCleanNeverLeavesAnEscapeOrControl(t *testing.T) {
	// Sequences cut anywhere, and glued to each other.
	parts := []string{"\x1b", "[", "]", "0;", "2J", "\x07", "\\", "P", "x", "\u009b", "\u009d", "\xc2", "\x9c", "\n", "\u202e", "é"}
	var in strings.Builder
	for i := range 4000 {
		in.WriteString(parts[(i*7+i/3)%len(parts)])
	}
	out := Clean(in.String())
	if !utf8.ValidString(out) {
		t.Fatalf("invalid UTF-8 left: %q", out)
	}
	for _, r := range out {
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || bidi(r) {
			t.Fatalf("%U left in %q", r, out)
		}
	}
}

func TestCleanReturnsCleanTextAsItIs(t *testing.T) {
	s := "a plain message, ünïcödé"
	if allocs := testing.AllocsPerRun(100, func() { _ = Clean(s) }); allocs != 0 {
		t.Fatalf("Clean of clean text allocates %v times", allocs)
	}
}

func TestMarkup(t *testing.T) {
	in := `<a href="https://evil">x</a> & it's <b>`
	want := `&lt;a href=&quot;https://evil&quot;&gt;x&lt;/a&gt; &amp; it's &lt;b&gt;`
	if got := Markup(in); got != want {
		t.Fatalf("Markup(%q) = %q, want %q", in, got, want)
	}
}

func TestCleanAllReachesEveryString(t *testing.T) {
	type inner struct {
		Text  string
		Texts []string
	}
	type wire struct {
		Name   string
		Inner  inner
		Ptr    *inner
		List   []inner
		Fields map[string]string
		Any    any
		hidden string
	}
	bad := "x\x1b]0;T\x07\x1b[2J"
	w := &wire{Name: bad, Inner: inner{Text: bad, Texts: []string{bad}}, Ptr: &inner{Text: bad}, List: []inner{{Text: bad}},
		Fields: map[string]string{bad: bad}, Any: bad, hidden: bad}
	CleanAll(w)
	if w.Name != "x" || w.Inner.Text != "x" || w.Inner.Texts[0] != "x" || w.Ptr.Text != "x" || w.List[0].Text != "x" ||
		w.Fields["x"] != "x" || len(w.Fields) != 1 || w.Any != "x" {
		t.Fatalf("not all cleaned: %+v %+v", w, *w.Ptr)
	}
	if w.hidden != bad {
		t.Fatal("an unexported field was changed")
	}
	CleanAll(nil)
	CleanAll((*wire)(nil))
}
