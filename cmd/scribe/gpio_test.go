package main

import (
	"strings"
	"testing"
)

// scribe gpio test names the problem in one line: no lines given, a missing chip, a
// device that is not a GPIO chip.
func TestGPIOTestCommandErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"gpio"}, 2, "scribe gpio test"},
		{[]string{"gpio", "test", "--chip", "gpiochip0"}, 2, "give --led, --button or both"},
		{[]string{"gpio", "test", "--chip", "gpiochip99", "--led", "17"}, 1, "no GPIO chip /dev/gpiochip99"},
		{[]string{"gpio", "test", "--chip", "/dev/null", "--button", "27"}, 1, "not a GPIO character device"},
	} {
		code, _, stderr := runCLI(c.args...)
		if code != c.code || !strings.Contains(stderr, c.want) || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
			t.Errorf("scribe %s: exit %d, stderr %q; want exit %d and one line with %q", strings.Join(c.args, " "), code, stderr, c.code, c.want)
		}
	}
}
