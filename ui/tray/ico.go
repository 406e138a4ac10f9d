package tray

import (
	"bytes"
	"encoding/binary"
)

// ico is png in an icon file (ICO) of one image, stored as PNG, as Windows
// (Vista and later) reads it: fyne.io/systray loads the tray icon on
// Windows with LoadImage from a file, which takes an icon file, not a PNG.
// A PNG without its header is returned as it came.
func ico(png []byte) []byte {
	const header, entry = 6, 16
	if len(png) < 24 || !bytes.HasPrefix(png, []byte("\x89PNG\r\n\x1a\n")) {
		return png
	}
	// The IHDR chunk comes first: its width and height follow its name.
	w, h := binary.BigEndian.Uint32(png[16:20]), binary.BigEndian.Uint32(png[20:24])
	side := func(n uint32) byte { // 256 and more are written 0
		if n >= 256 {
			return 0
		}
		return byte(n)
	}
	var b bytes.Buffer
	_ = binary.Write(&b, binary.LittleEndian, [3]uint16{0, 1, 1}) // reserved, type 1 (icon), one image
	b.Write([]byte{side(w), side(h), 0, 0})                       // width, height, no palette, reserved
	_ = binary.Write(&b, binary.LittleEndian, struct {
		Planes, BitCount uint16
		Size, Offset     uint32
	}{1, 32, uint32(len(png)), header + entry})
	b.Write(png)
	return b.Bytes()
}
