package activation

import (
	"strings"
	"testing"
)

func TestALinkNamesAVerbAndAConnection(t *testing.T) {
	for link, want := range map[string]Request{
		"tokentray://reauth/procore":        {Reauth, "procore"},
		"tokentray://edit/procore-sandbox":  {Edit, "procore-sandbox"},
		"tokentray:reauth/procore":          {Reauth, "procore"},
		"TOKENTRAY://REAUTH/Procore":        {Reauth, "Procore"}, // the name keeps its case
		"tokentray://reauth/procore/":       {Reauth, "procore"},
		"tokentray://reauth/procore@moby-1": {Reauth, "procore@moby-1"},
		"tokentray://edit/a.b_c-9":          {Edit, "a.b_c-9"},
		Link(Reauth, "github"):              {Reauth, "github"},
		Link(Edit, "procore@build.example"): {Edit, "procore@build.example"},
	} {
		got, err := Parse(link)
		if err != nil || got != want {
			t.Errorf("Parse(%q) = %+v, %v; want %+v", link, got, err, want)
		}
	}
}

// Any web page can open a tokentray: link: whatever is not exactly a verb
// and a name is refused, before anything is asked of the running tokentray.
func TestAnythingElseIsRefused(t *testing.T) {
	for _, link := range []string{
		"",
		"tokentray:",
		"tokentray://",
		"tokentray://reauth",
		"tokentray://reauth/",
		"tokentray://logout/procore",
		"tokentray://token/procore",
		"tokentray://exec/procore",
		"tokentray://reauth/procore?redirect=https://evil.example",
		"tokentray://reauth/procore#x",
		"tokentray://reauth/pro%63ore",
		"tokentray://reauth/procore/extra",
		"tokentray://reauth/../procore",
		"tokentray://reauth/-procore",
		"tokentray://reauth/procore@",
		"tokentray://reauth/@moby",
		"tokentray://reauth/a@b@c",
		"tokentray://user@reauth/procore",
		"tokentray://reauth:80/procore",
		"tokentray://reauth/pro core",
		"tokentray://reauth/procore\n--config=x",
		"tokentray://reauth/" + strings.Repeat("a", 65),
		"tokentray://reauth/" + strings.Repeat("a", 300),
		"https://reauth/procore",
		"tokentrayx://reauth/procore",
		"reauth/procore",
	} {
		if got, err := Parse(link); err == nil {
			t.Errorf("Parse(%q) = %+v, want an error", link, got)
		}
	}
}

func TestIsTellsALinkFromACommand(t *testing.T) {
	for arg, want := range map[string]bool{
		"tokentray://reauth/x": true, "TokenTray:edit/x": true, "tokentray:": true,
		"token": false, "tokentray": false, "status": false, "--config": false,
	} {
		if Is(arg) != want {
			t.Errorf("Is(%q) = %t", arg, !want)
		}
	}
}
