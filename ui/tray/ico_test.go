package tray

import (
	"bytes"
	"encoding/binary"
	"image/png"
	"testing"

	"github.com/tokentray/tokentray/internal/humanize"
)

// Each level's icon, as Windows' LoadImage reads it: an icon file whose one
// image is the PNG itself, its size in the directory entry.
func TestTheWindowsTrayIconIsAnIconFile(t *testing.T) {
	for _, l := range []humanize.Level{humanize.Green, humanize.Red, humanize.Grey} {
		p := Icon(l)
		cfg, err := png.DecodeConfig(bytes.NewReader(p))
		if err != nil {
			t.Fatal(err)
		}
		f := ico(p)
		var dir struct{ Reserved, Type, Count uint16 }
		var e struct {
			Width, Height, Colors, Reserved uint8
			Planes, BitCount                uint16
			Size, Offset                    uint32
		}
		r := bytes.NewReader(f)
		if binary.Read(r, binary.LittleEndian, &dir) != nil || binary.Read(r, binary.LittleEndian, &e) != nil {
			t.Fatal("short icon file")
		}
		if dir != (struct{ Reserved, Type, Count uint16 }{0, 1, 1}) {
			t.Fatalf("%v: icon directory %+v", l, dir)
		}
		if int(e.Width) != cfg.Width%256 || int(e.Height) != cfg.Height%256 || e.Planes != 1 || e.BitCount != 32 ||
			int(e.Size) != len(p) || e.Offset != 22 || !bytes.Equal(f[e.Offset:], p) {
			t.Fatalf("%v: entry %+v for a %dx%d PNG of %d bytes", l, e, cfg.Width, cfg.Height, len(p))
		}
	}
	if got := ico([]byte("not a png")); string(got) != "not a png" {
		t.Fatalf("a non-PNG: %q", got)
	}
}
