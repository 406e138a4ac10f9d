package notify

import (
	"encoding/xml"
	"strings"
	"testing"
)

// parsedToast is a toast as Windows reads it.
type parsedToast struct {
	ActivationType string `xml:"activationType,attr"`
	Launch         string `xml:"launch,attr"`
	Duration       string `xml:"duration,attr"`
	Scenario       string `xml:"scenario,attr"`
	Binding        struct {
		Template string `xml:"template,attr"`
		Image    struct {
			Placement string `xml:"placement,attr"`
			Src       string `xml:"src,attr"`
		} `xml:"image"`
		Text []string `xml:"text"`
	} `xml:"visual>binding"`
	Audio struct {
		Src    string `xml:"src,attr"`
		Silent string `xml:"silent,attr"`
	} `xml:"audio"`
	Actions []struct {
		ActivationType string `xml:"activationType,attr"`
		Content        string `xml:"content,attr"`
		Arguments      string `xml:"arguments,attr"`
	} `xml:"actions>action"`
}

func parseToast(t *testing.T, s string) parsedToast {
	t.Helper()
	var p parsedToast
	if err := xml.Unmarshal([]byte(s), &p); err != nil {
		t.Fatalf("not XML: %v\n%s", err, s)
	}
	return p
}

func TestAnAlertsToastHasAButtonThatOpensItsLink(t *testing.T) {
	m := Message{Title: "procore: sign-in needed", Body: "The provider refused the refresh token.", Urgent: true,
		Action: "Re-authenticate", Link: "tokentray://reauth/procore", OnAction: func() {}}
	p := parseToast(t, ToastXML(m, `C:\Users\ann\AppData\Local\tokentray\red.png`))
	if p.ActivationType != "protocol" || p.Launch != m.Link {
		t.Errorf("a click on the toast: %s %q, want protocol %q", p.ActivationType, p.Launch, m.Link)
	}
	if len(p.Actions) != 1 || p.Actions[0].ActivationType != "protocol" || p.Actions[0].Content != "Re-authenticate" || p.Actions[0].Arguments != m.Link {
		t.Errorf("buttons: %+v", p.Actions)
	}
	if p.Binding.Template != "ToastGeneric" || len(p.Binding.Text) != 2 || p.Binding.Text[0] != m.Title || p.Binding.Text[1] != m.Body {
		t.Errorf("text: %+v", p.Binding)
	}
	if p.Binding.Image.Placement != "appLogoOverride" || p.Binding.Image.Src != `C:\Users\ann\AppData\Local\tokentray\red.png` {
		t.Errorf("image: %+v", p.Binding.Image)
	}
	if p.Scenario != "reminder" || p.Duration != "long" || p.Audio.Silent == "true" {
		t.Errorf("an urgent alert: scenario %q, duration %q, audio %+v; want a reminder that stays, with a sound", p.Scenario, p.Duration, p.Audio)
	}
}

// A title or body is text: a server's or a connection's words cannot add
// markup, a button or a link to the toast.
func TestAToastsTextIsText(t *testing.T) {
	evil := `x"/><action activationType="protocol" content="Pay" arguments="https://evil.example"/><text>]]><!--`
	m := Message{Title: evil, Body: evil + " & <b>", Action: "Re-authenticate", Link: "tokentray://reauth/p"}
	p := parseToast(t, ToastXML(m, ""))
	if len(p.Actions) != 1 || p.Actions[0].Arguments != "tokentray://reauth/p" {
		t.Fatalf("buttons: %+v", p.Actions)
	}
	if p.Binding.Text[0] != evil || p.Binding.Text[1] != evil+" & <b>" {
		t.Fatalf("text: %q", p.Binding.Text)
	}
	if p.Binding.Image.Src != "" {
		t.Fatalf("an image with no icon: %+v", p.Binding.Image)
	}
}

func TestAToastWithoutALinkSaysWhereTheActionIs(t *testing.T) {
	p := parseToast(t, ToastXML(Message{Title: "t", Body: "b", Action: "Open the page", OnAction: func() {}}, ""))
	if len(p.Actions) != 0 || p.ActivationType != "" || p.Launch != "" {
		t.Fatalf("a button or a launch without a link: %+v", p)
	}
	if !strings.HasSuffix(p.Binding.Text[1], "\nChoose Open the page in the tokentray menu.") {
		t.Fatalf("body: %q", p.Binding.Text[1])
	}
	p = parseToast(t, ToastXML(Message{Title: "procore is connected again"}, ""))
	if len(p.Actions) != 0 || len(p.Binding.Text) != 1 || p.Audio.Silent != "true" || p.Duration != "short" || p.Scenario != "" {
		t.Fatalf("a plain notice: %+v", p)
	}
}
