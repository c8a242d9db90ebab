// Package gpio drives a room agent's recording indicator LED and reads its Start/Stop
// button through the Linux GPIO character device (/dev/gpiochipN, uAPI v2), in pure Go:
// no cgo, no libgpiod, and not the deprecated sysfs interface.
package gpio

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// consumer is the label other tools (gpioinfo) show for lines scribe holds.
const consumer = "scribe"

// ChipPath turns "gpiochip0", "0" or "/dev/gpiochip0" into the device path.
func ChipPath(chip string) string {
	switch {
	case strings.Contains(chip, "/"):
		return chip
	case chip != "" && strings.Trim(chip, "0123456789") == "":
		return "/dev/gpiochip" + chip
	default:
		return filepath.Join("/dev", chip)
	}
}

// ChipInfo describes a GPIO chip.
type ChipInfo struct {
	Path  string
	Name  string // e.g. gpiochip0
	Label string // the driver's label, e.g. pinctrl-rp1 on a Pi 5
	Lines int
}

// Info opens a chip and reports its name, label and number of lines.
func Info(chip string) (ChipInfo, error) {
	f, info, err := openChip(chip)
	if err != nil {
		return ChipInfo{}, err
	}
	f.Close()
	return info, nil
}

func ioctlPtr(fd uintptr, req uintptr, p unsafe.Pointer) error {
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, fd, req, uintptr(p))
	if errno != 0 {
		return errno
	}
	return nil
}

func cstring(b []byte) string {
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// openChip opens the chip device and reads its info, turning the usual set-up mistakes
// into errors that tell IT what to do.
func openChip(chip string) (*os.File, ChipInfo, error) {
	path := ChipPath(chip)
	f, err := os.OpenFile(path, os.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, ChipInfo{}, chipError(path, err)
	}
	var ci chipInfo
	if err := ioctlPtr(f.Fd(), ioctlGetChipInfo, unsafe.Pointer(&ci)); err != nil {
		f.Close()
		return nil, ChipInfo{}, chipError(path, err)
	}
	return f, ChipInfo{Path: path, Name: cstring(ci.Name[:]), Label: cstring(ci.Label[:]), Lines: int(ci.Lines)}, nil
}

// ErrPermission is wrapped by errors caused by missing access to the GPIO device.
var ErrPermission = errors.New("permission denied")

// chipError explains a failure to open or query a chip.
func chipError(path string, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("gpio: no GPIO chip %s (ls /dev/gpiochip* or gpiodetect lists the chips; the Raspberry Pi header is gpiochip0 on current kernels, gpiochip4 on early Pi 5 kernels): %w", path, err)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("gpio: %w opening %s: add the user to group gpio (usermod -aG gpio USER, then log in again; the scribe-agent unit has SupplementaryGroups=gpio): %w", ErrPermission, path, err)
	case errors.Is(err, unix.ENOTTY), errors.Is(err, unix.EINVAL):
		return fmt.Errorf("gpio: %s is not a GPIO character device: %w", path, err)
	default:
		return fmt.Errorf("gpio: %s: %w", path, err)
	}
}

// ErrBusy is wrapped when another program holds the requested line.
var ErrBusy = errors.New("line busy")

// lineError explains a failed line request.
func lineError(info ChipInfo, line int, err error) error {
	switch {
	case errors.Is(err, unix.EBUSY):
		return fmt.Errorf("gpio: %s line %d: %w: another program holds it (gpioinfo %s shows which): %w", info.Name, line, ErrBusy, info.Name, err)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("gpio: %s line %d: %w: add the user to group gpio: %w", info.Name, line, ErrPermission, err)
	default:
		return fmt.Errorf("gpio: request %s line %d: %w", info.Name, line, err)
	}
}

// requestLine asks the chip for one line with the given flags and returns the line
// request's file descriptor (non-blocking, close-on-exec).
func requestLine(chip string, line int, flags uint64, what string) (int, ChipInfo, error) {
	f, info, err := openChip(chip)
	if err != nil {
		return -1, info, err
	}
	// The line request outlives the chip fd: the kernel keeps the chip referenced.
	defer f.Close()
	if line < 0 || line >= info.Lines {
		return -1, info, fmt.Errorf("gpio: %s (%s) has lines 0–%d; there is no line %d for the %s", info.Name, info.Label, info.Lines-1, line, what)
	}
	var req lineRequest
	req.Offsets[0] = uint32(line)
	req.NumLines = 1
	copy(req.Consumer[:maxNameSize-1], consumer+"-"+what)
	req.Config.Flags = flags
	if flags&flagOutput != 0 {
		// Start dark: the indicator is lit only once the agent says it is recording.
		req.Config.NumAttrs = 1
		req.Config.Attrs[0] = lineConfigAttribute{Attr: lineAttribute{ID: attrIDOutputValues, Value: 0}, Mask: 1}
	}
	if err := ioctlPtr(f.Fd(), ioctlGetLine, unsafe.Pointer(&req)); err != nil {
		return -1, info, lineError(info, line, err)
	}
	fd := int(req.Fd)
	unix.CloseOnExec(fd)
	return fd, info, nil
}

// LED is the recording indicator: an output line driven high while recording.
type LED struct {
	mu   sync.Mutex
	fd   int
	on   bool
	Chip ChipInfo
	Line int
}

// OpenLED claims line on chip as an output, initially off.
func OpenLED(chip string, line int) (*LED, error) {
	fd, info, err := requestLine(chip, line, flagOutput, "led")
	if err != nil {
		return nil, err
	}
	return &LED{fd: fd, Chip: info, Line: line}, nil
}

// SetRecording lights the LED (on) or turns it off. It implements the agent's Indicator.
func (l *LED) SetRecording(on bool) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fd < 0 {
		return errors.New("gpio: LED is closed")
	}
	v := lineValues{Mask: 1}
	if on {
		v.Bits = 1
	}
	if err := ioctlPtr(uintptr(l.fd), ioctlSetLineValues, unsafe.Pointer(&v)); err != nil {
		return fmt.Errorf("gpio: set %s line %d: %w", l.Chip.Name, l.Line, err)
	}
	l.on = on
	return nil
}

// Close turns the LED off and releases the line. A released line keeps its last value
// on most chips, so a lit LED would otherwise claim recording after the agent exits.
func (l *LED) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.fd < 0 {
		return nil
	}
	v := lineValues{Mask: 1}
	err := ioctlPtr(uintptr(l.fd), ioctlSetLineValues, unsafe.Pointer(&v))
	if cerr := unix.Close(l.fd); err == nil {
		err = cerr
	}
	l.fd = -1
	if err != nil {
		return fmt.Errorf("gpio: release LED: %w", err)
	}
	return nil
}
