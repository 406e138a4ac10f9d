package auth

import "fmt"

func fmtAll(v any) string {
	return fmt.Sprintf("%s %v %+v %#v %q %x", v, v, v, v, v, v)
}
