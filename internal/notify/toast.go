package notify

import (
	"bytes"
	"encoding/xml"
)

// ToastXML is m as a Windows toast notification (the ToastGeneric
// template of the toast schema). beeep draws no buttons, so tokentray
// writes the toast itself: its button is a protocol activation of m.Link
// (a tokentray: link, or a web page), which Windows opens with the program
// registered for the scheme, since a toast outlives the process that
// showed it. A click on the toast itself opens the same link. icon is a
// PNG file's path, or "". A message whose action has no link gets no
// button, and says where the action is instead.
func ToastXML(m Message, icon string) string {
	t := toast{Duration: "short"}
	if m.Urgent {
		t.Duration = "long"
	}
	if icon != "" {
		t.Visual.Binding.Image = &toastImage{Placement: "appLogoOverride", Src: icon}
	}
	body := m.Body
	switch {
	case m.Action != "" && m.Link != "":
		t.ActivationType, t.Launch = "protocol", m.Link
		t.Actions = &toastActions{Action: []toastAction{{ActivationType: "protocol", Content: m.Action, Arguments: m.Link}}}
		if m.Urgent {
			// A reminder stays on screen until a person acts on it.
			t.Scenario = "reminder"
		}
	case m.Action != "":
		body += "\nChoose " + m.Action + " in the tokentray menu."
	}
	t.Visual.Binding.Template = "ToastGeneric"
	t.Visual.Binding.Text = []string{m.Title}
	if body != "" {
		t.Visual.Binding.Text = append(t.Visual.Binding.Text, body)
	}
	t.Audio = toastAudio{Silent: "true"}
	if m.Urgent {
		t.Audio = toastAudio{Src: "ms-winsoundevent:Notification.Default"}
	}
	var b bytes.Buffer
	enc := xml.NewEncoder(&b)
	_ = enc.Encode(t) // of fixed types: it cannot fail
	return b.String()
}

type toast struct {
	XMLName        xml.Name      `xml:"toast"`
	ActivationType string        `xml:"activationType,attr,omitempty"`
	Launch         string        `xml:"launch,attr,omitempty"`
	Duration       string        `xml:"duration,attr"`
	Scenario       string        `xml:"scenario,attr,omitempty"`
	Visual         toastVisual   `xml:"visual"`
	Audio          toastAudio    `xml:"audio"`
	Actions        *toastActions `xml:"actions"`
}

type toastVisual struct {
	Binding struct {
		Template string      `xml:"template,attr"`
		Image    *toastImage `xml:"image"`
		Text     []string    `xml:"text"`
	} `xml:"binding"`
}

type toastImage struct {
	Placement string `xml:"placement,attr"`
	Src       string `xml:"src,attr"`
}

type toastAudio struct {
	Src    string `xml:"src,attr,omitempty"`
	Silent string `xml:"silent,attr,omitempty"`
}

type toastActions struct {
	Action []toastAction `xml:"action"`
}

type toastAction struct {
	ActivationType string `xml:"activationType,attr"`
	Content        string `xml:"content,attr"`
	Arguments      string `xml:"arguments,attr"`
}
