package socket

import "syscall"

// startEnv is the value of the environment variable name as the process
// started with it (first mention wins, as in os.Getenv), read from
// /proc/self/environ without making a map of them all; ok is false when
// that cannot be read (no /proc), and the caller asks os.Getenv.
func startEnv(name string) (value string, ok bool) {
	fd, err := syscall.Open("/proc/self/environ", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "", false
	}
	defer syscall.Close(fd)
	var (
		buf      [512]byte
		pos      int    // in the current entry
		matching = true // the current entry starts with name so far
		inValue  bool   // name= was matched
		val      []byte // the value read in earlier chunks
		start    int    // of the value in this chunk
	)
	for {
		n, err := syscall.Read(fd, buf[:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return "", false
		}
		if n == 0 {
			return string(val), true // an entry without its NUL, or none
		}
		start = 0
		for i, c := range buf[:n] {
			switch {
			case c == 0:
				if inValue { // one allocation, of the value's size
					return string(append(val, buf[start:i]...)), true
				}
				pos, matching = 0, true
				continue
			case inValue:
			case !matching:
			case pos < len(name):
				matching = c == name[pos]
			default:
				matching, inValue, start = false, c == '=', i+1
			}
			pos++
		}
		if inValue {
			val = append(val, buf[start:n]...)
		}
	}
}
