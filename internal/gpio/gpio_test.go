package gpio

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

func TestChipPath(t *testing.T) {
	for in, want := range map[string]string{
		"gpiochip0": "/dev/gpiochip0", "4": "/dev/gpiochip4", "/dev/gpiochip4": "/dev/gpiochip4", "./x": "./x",
	} {
		if got := ChipPath(in); got != want {
			t.Errorf("ChipPath(%q) = %q, want %q", in, got, want)
		}
	}
}

// Opening the LED or button on a chip that does not exist, or on a device that is not a
// GPIO chip, fails with an error that says what is wrong and what to check.
func TestOpenErrors(t *testing.T) {
	_, err := OpenLED("gpiochip99", 17)
	if err == nil || !errors.Is(err, os.ErrNotExist) || !strings.Contains(err.Error(), "no GPIO chip /dev/gpiochip99") {
		t.Errorf("OpenLED on a missing chip: %v", err)
	}
	_, _, err = WatchButton(context.Background(), "gpiochip99", 27, true)
	if err == nil || !strings.Contains(err.Error(), "no GPIO chip") {
		t.Errorf("WatchButton on a missing chip: %v", err)
	}
	// /dev/null opens but answers the chip-info ioctl with ENOTTY.
	_, err = OpenLED("/dev/null", 17)
	if err == nil || !strings.Contains(err.Error(), "/dev/null is not a GPIO character device") {
		t.Errorf("OpenLED on /dev/null: %v", err)
	}
	if _, err := Info("gpiochip99"); err == nil {
		t.Error("Info on a missing chip succeeded")
	}
	var nilLED LED
	nilLED.fd = -1
	if err := nilLED.SetRecording(true); err == nil {
		t.Error("SetRecording on a closed LED succeeded")
	}
}

// Permission and busy errors cannot be produced here (the tests run as root, on a kernel
// without GPIO): check that the kernel's errno becomes the advice an IT person needs.
func TestErrorAdvice(t *testing.T) {
	err := chipError("/dev/gpiochip0", &os.PathError{Op: "open", Path: "/dev/gpiochip0", Err: unix.EACCES})
	if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "group gpio") {
		t.Errorf("permission error: %v", err)
	}
	info := ChipInfo{Name: "gpiochip0", Label: "pinctrl-rp1", Lines: 54}
	err = lineError(info, 17, unix.EBUSY)
	if !errors.Is(err, ErrBusy) || !strings.Contains(err.Error(), "another program holds it") {
		t.Errorf("busy error: %v", err)
	}
	if err := lineError(info, 17, unix.EPERM); !errors.Is(err, ErrPermission) {
		t.Errorf("EPERM on a line request: %v", err)
	}
}
