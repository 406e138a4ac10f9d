package main

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// The launchd agent shipped for macOS (assets/macos) is a property list
// that launchd reads: a plist whose dict runs `tokentray serve` at load,
// starts it again when it fails (not when it was stopped), gives it the
// minute to save a refresh under way that the systemd unit gives, and
// keeps its files private (umask 077). Parsed back here element by
// element; .ci/package parses it again with Python's plistlib.
func TestTheLaunchdAgentRunsServe(t *testing.T) {
	b, err := os.ReadFile("../../assets/macos/io.tokentray.serve.plist")
	if err != nil {
		t.Fatal(err)
	}
	agent, err := parsePlist(b)
	if err != nil {
		t.Fatalf("the launchd agent is not a property list: %v", err)
	}
	want := map[string]any{
		"Label":            "io.tokentray.serve",
		"ProgramArguments": []any{"/usr/local/bin/tokentray", "serve"},
		"RunAtLoad":        true,
		"KeepAlive":        map[string]any{"SuccessfulExit": false},
		"ThrottleInterval": int64(5),
		"ExitTimeOut":      int64(60),
		"ProcessType":      "Background",
		"Umask":            int64(0o077),
	}
	if !reflect.DeepEqual(agent, want) {
		t.Fatalf("the launchd agent:\n%#v\nwant\n%#v", agent, want)
	}
	// Its command is tokentray's: serve is a command of the CLI.
	root := newRootCmd(streams{in: strings.NewReader(""), out: io.Discard, err: io.Discard}, deps{})
	if c, _, err := root.Find([]string{"serve"}); err != nil || c.Name() != "serve" {
		t.Fatalf("the agent runs `tokentray serve`, which is not a command: %v", err)
	}
	if !bytes.Contains(b, []byte(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN"`)) {
		t.Fatal("the launchd agent has no plist DOCTYPE")
	}
}

// parsePlist reads an XML property list: its one top value, with dict as
// map[string]any, array as []any, string, integer (int64), true and false.
func parsePlist(b []byte) (any, error) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.Strict = true
	start, err := nextStart(d)
	if err != nil {
		return nil, err
	}
	if start.Name.Local != "plist" {
		return nil, fmt.Errorf("the root is <%s>, not <plist>", start.Name.Local)
	}
	top, err := nextStart(d)
	if err != nil {
		return nil, err
	}
	v, err := plistValue(d, top)
	if err != nil {
		return nil, err
	}
	if _, err := nextStart(d); err != io.EOF {
		return nil, fmt.Errorf("more than one value in <plist>: %v", err)
	}
	return v, nil
}

// nextStart is the next start element, io.EOF at the end.
func nextStart(d *xml.Decoder) (xml.StartElement, error) {
	for {
		tok, err := d.Token()
		if err != nil {
			return xml.StartElement{}, err
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			return tok, nil
		case xml.EndElement:
			if tok.Name.Local == "plist" {
				continue
			}
			return xml.StartElement{}, errEnd
		}
	}
}

var errEnd = fmt.Errorf("end of container")

func plistValue(d *xml.Decoder, start xml.StartElement) (any, error) {
	switch start.Name.Local {
	case "string", "integer":
		var s string
		if err := d.DecodeElement(&s, &start); err != nil {
			return nil, err
		}
		if start.Name.Local == "string" {
			return s, nil
		}
		return strconv.ParseInt(strings.TrimSpace(s), 10, 64)
	case "true", "false":
		if err := d.Skip(); err != nil {
			return nil, err
		}
		return start.Name.Local == "true", nil
	case "array":
		out := []any{}
		for {
			el, err := nextStart(d)
			if err == errEnd {
				return out, nil
			} else if err != nil {
				return nil, err
			}
			v, err := plistValue(d, el)
			if err != nil {
				return nil, err
			}
			out = append(out, v)
		}
	case "dict":
		out := map[string]any{}
		for {
			key, err := nextStart(d)
			if err == errEnd {
				return out, nil
			} else if err != nil {
				return nil, err
			}
			var k string
			if key.Name.Local != "key" {
				return nil, fmt.Errorf("<%s> where a dict has a <key>", key.Name.Local)
			}
			if err := d.DecodeElement(&k, &key); err != nil {
				return nil, err
			}
			if _, dup := out[k]; dup {
				return nil, fmt.Errorf("key %q twice", k)
			}
			el, err := nextStart(d)
			if err != nil {
				return nil, fmt.Errorf("key %q has no value: %v", k, err)
			}
			if out[k], err = plistValue(d, el); err != nil {
				return nil, fmt.Errorf("%s: %w", k, err)
			}
		}
	}
	return nil, fmt.Errorf("<%s> is not a property list value", start.Name.Local)
}
