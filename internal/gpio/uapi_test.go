package gpio

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

const kernelHeader = "/usr/include/linux/gpio.h"

// cProbe prints, for the machine's own compiler and kernel header, every size, offset,
// constant and ioctl number the Go mirror relies on.
const cProbe = `#include <stdio.h>
#include <stddef.h>
#include <linux/gpio.h>
#define P(name, v) printf("%s %llu\n", name, (unsigned long long)(v))
#define S(t) P("sizeof " #t, sizeof(struct t))
#define O(t, f) P("offsetof " #t "." #f, offsetof(struct t, f))
int main(void) {
	S(gpiochip_info); O(gpiochip_info, label); O(gpiochip_info, lines);
	S(gpio_v2_line_attribute); O(gpio_v2_line_attribute, flags); O(gpio_v2_line_attribute, debounce_period_us);
	S(gpio_v2_line_config_attribute); O(gpio_v2_line_config_attribute, mask);
	S(gpio_v2_line_config); O(gpio_v2_line_config, num_attrs); O(gpio_v2_line_config, attrs);
	S(gpio_v2_line_request); O(gpio_v2_line_request, consumer); O(gpio_v2_line_request, config);
	O(gpio_v2_line_request, num_lines); O(gpio_v2_line_request, event_buffer_size); O(gpio_v2_line_request, fd);
	S(gpio_v2_line_values); O(gpio_v2_line_values, mask);
	S(gpio_v2_line_event); O(gpio_v2_line_event, id); O(gpio_v2_line_event, offset);
	O(gpio_v2_line_event, seqno); O(gpio_v2_line_event, line_seqno);
	P("GPIO_MAX_NAME_SIZE", GPIO_MAX_NAME_SIZE); P("GPIO_V2_LINES_MAX", GPIO_V2_LINES_MAX);
	P("GPIO_V2_LINE_NUM_ATTRS_MAX", GPIO_V2_LINE_NUM_ATTRS_MAX);
	P("GPIO_GET_CHIPINFO_IOCTL", GPIO_GET_CHIPINFO_IOCTL);
	P("GPIO_V2_GET_LINE_IOCTL", GPIO_V2_GET_LINE_IOCTL);
	P("GPIO_V2_LINE_GET_VALUES_IOCTL", GPIO_V2_LINE_GET_VALUES_IOCTL);
	P("GPIO_V2_LINE_SET_VALUES_IOCTL", GPIO_V2_LINE_SET_VALUES_IOCTL);
	P("GPIO_V2_LINE_FLAG_USED", GPIO_V2_LINE_FLAG_USED);
	P("GPIO_V2_LINE_FLAG_ACTIVE_LOW", GPIO_V2_LINE_FLAG_ACTIVE_LOW);
	P("GPIO_V2_LINE_FLAG_INPUT", GPIO_V2_LINE_FLAG_INPUT);
	P("GPIO_V2_LINE_FLAG_OUTPUT", GPIO_V2_LINE_FLAG_OUTPUT);
	P("GPIO_V2_LINE_FLAG_EDGE_RISING", GPIO_V2_LINE_FLAG_EDGE_RISING);
	P("GPIO_V2_LINE_FLAG_EDGE_FALLING", GPIO_V2_LINE_FLAG_EDGE_FALLING);
	P("GPIO_V2_LINE_FLAG_BIAS_PULL_UP", GPIO_V2_LINE_FLAG_BIAS_PULL_UP);
	P("GPIO_V2_LINE_FLAG_BIAS_PULL_DOWN", GPIO_V2_LINE_FLAG_BIAS_PULL_DOWN);
	P("GPIO_V2_LINE_FLAG_BIAS_DISABLED", GPIO_V2_LINE_FLAG_BIAS_DISABLED);
	P("GPIO_V2_LINE_FLAG_EVENT_CLOCK_REALTIME", GPIO_V2_LINE_FLAG_EVENT_CLOCK_REALTIME);
	P("GPIO_V2_LINE_ATTR_ID_FLAGS", GPIO_V2_LINE_ATTR_ID_FLAGS);
	P("GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES", GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES);
	P("GPIO_V2_LINE_ATTR_ID_DEBOUNCE", GPIO_V2_LINE_ATTR_ID_DEBOUNCE);
	P("GPIO_V2_LINE_EVENT_RISING_EDGE", GPIO_V2_LINE_EVENT_RISING_EDGE);
	P("GPIO_V2_LINE_EVENT_FALLING_EDGE", GPIO_V2_LINE_EVENT_FALLING_EDGE);
	return 0;
}
`

// The Go mirror of the uAPI matches the kernel header on this machine: every struct size
// and field offset, flag, attribute and event id, and ioctl number. A mismatch would make
// the kernel read garbage or refuse every request, which only shows on real hardware.
func TestUAPIMatchesKernelHeader(t *testing.T) {
	gcc, err := exec.LookPath("gcc")
	if err != nil {
		t.Skip("gcc is not installed (it is in the sid build root); cannot compare with the kernel header")
	}
	if _, err := os.Stat(kernelHeader); err != nil {
		t.Skipf("%s is missing (Debian package linux-libc-dev); cannot compare with the kernel header", kernelHeader)
	}
	dir := t.TempDir()
	src := filepath.Join(dir, "probe.c")
	if err := os.WriteFile(src, []byte(cProbe), 0o600); err != nil {
		t.Fatal(err)
	}
	exe := filepath.Join(dir, "probe")
	if out, err := exec.Command(gcc, "-Wall", "-Werror", "-o", exe, src).CombinedOutput(); err != nil {
		t.Fatalf("compile the probe: %v\n%s", err, out)
	}
	out, err := exec.Command(exe).Output()
	if err != nil {
		t.Fatalf("run the probe: %v", err)
	}
	c := map[string]uint64{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		i := strings.LastIndexByte(sc.Text(), ' ')
		v, err := strconv.ParseUint(sc.Text()[i+1:], 10, 64)
		if err != nil {
			t.Fatalf("probe line %q: %v", sc.Text(), err)
		}
		c[sc.Text()[:i]] = v
	}

	var (
		ci  chipInfo
		la  lineAttribute
		lca lineConfigAttribute
		lc  lineConfig
		lr  lineRequest
		lv  lineValues
		le  lineEvent
	)
	goSide := map[string]uint64{
		"sizeof gpiochip_info":                               uint64(unsafe.Sizeof(ci)),
		"offsetof gpiochip_info.label":                       uint64(unsafe.Offsetof(ci.Label)),
		"offsetof gpiochip_info.lines":                       uint64(unsafe.Offsetof(ci.Lines)),
		"sizeof gpio_v2_line_attribute":                      uint64(unsafe.Sizeof(la)),
		"offsetof gpio_v2_line_attribute.flags":              uint64(unsafe.Offsetof(la.Value)),
		"offsetof gpio_v2_line_attribute.debounce_period_us": uint64(unsafe.Offsetof(la.Value)),
		"sizeof gpio_v2_line_config_attribute":               uint64(unsafe.Sizeof(lca)),
		"offsetof gpio_v2_line_config_attribute.mask":        uint64(unsafe.Offsetof(lca.Mask)),
		"sizeof gpio_v2_line_config":                         uint64(unsafe.Sizeof(lc)),
		"offsetof gpio_v2_line_config.num_attrs":             uint64(unsafe.Offsetof(lc.NumAttrs)),
		"offsetof gpio_v2_line_config.attrs":                 uint64(unsafe.Offsetof(lc.Attrs)),
		"sizeof gpio_v2_line_request":                        uint64(unsafe.Sizeof(lr)),
		"offsetof gpio_v2_line_request.consumer":             uint64(unsafe.Offsetof(lr.Consumer)),
		"offsetof gpio_v2_line_request.config":               uint64(unsafe.Offsetof(lr.Config)),
		"offsetof gpio_v2_line_request.num_lines":            uint64(unsafe.Offsetof(lr.NumLines)),
		"offsetof gpio_v2_line_request.event_buffer_size":    uint64(unsafe.Offsetof(lr.EventBufferSize)),
		"offsetof gpio_v2_line_request.fd":                   uint64(unsafe.Offsetof(lr.Fd)),
		"sizeof gpio_v2_line_values":                         uint64(unsafe.Sizeof(lv)),
		"offsetof gpio_v2_line_values.mask":                  uint64(unsafe.Offsetof(lv.Mask)),
		"sizeof gpio_v2_line_event":                          uint64(unsafe.Sizeof(le)),
		"offsetof gpio_v2_line_event.id":                     uint64(unsafe.Offsetof(le.ID)),
		"offsetof gpio_v2_line_event.offset":                 uint64(unsafe.Offsetof(le.Offset)),
		"offsetof gpio_v2_line_event.seqno":                  uint64(unsafe.Offsetof(le.Seqno)),
		"offsetof gpio_v2_line_event.line_seqno":             uint64(unsafe.Offsetof(le.LineSeqno)),
		"GPIO_MAX_NAME_SIZE":                                 maxNameSize,
		"GPIO_V2_LINES_MAX":                                  linesMax,
		"GPIO_V2_LINE_NUM_ATTRS_MAX":                         lineNumAttrsMax,
		"GPIO_GET_CHIPINFO_IOCTL":                            uint64(ioctlGetChipInfo),
		"GPIO_V2_GET_LINE_IOCTL":                             uint64(ioctlGetLine),
		"GPIO_V2_LINE_GET_VALUES_IOCTL":                      uint64(ioctlGetLineValues),
		"GPIO_V2_LINE_SET_VALUES_IOCTL":                      uint64(ioctlSetLineValues),
		"GPIO_V2_LINE_FLAG_USED":                             flagUsed,
		"GPIO_V2_LINE_FLAG_ACTIVE_LOW":                       flagActiveLow,
		"GPIO_V2_LINE_FLAG_INPUT":                            flagInput,
		"GPIO_V2_LINE_FLAG_OUTPUT":                           flagOutput,
		"GPIO_V2_LINE_FLAG_EDGE_RISING":                      flagEdgeRising,
		"GPIO_V2_LINE_FLAG_EDGE_FALLING":                     flagEdgeFalling,
		"GPIO_V2_LINE_FLAG_BIAS_PULL_UP":                     flagBiasPullUp,
		"GPIO_V2_LINE_FLAG_BIAS_PULL_DOWN":                   flagBiasPullDown,
		"GPIO_V2_LINE_FLAG_BIAS_DISABLED":                    flagBiasDisabled,
		"GPIO_V2_LINE_FLAG_EVENT_CLOCK_REALTIME":             flagClockRealtime,
		"GPIO_V2_LINE_ATTR_ID_FLAGS":                         uint64(attrIDFlags),
		"GPIO_V2_LINE_ATTR_ID_OUTPUT_VALUES":                 uint64(attrIDOutputValues),
		"GPIO_V2_LINE_ATTR_ID_DEBOUNCE":                      uint64(attrIDDebounce),
		"GPIO_V2_LINE_EVENT_RISING_EDGE":                     uint64(eventRisingEdge),
		"GPIO_V2_LINE_EVENT_FALLING_EDGE":                    uint64(eventFallingEdge),
	}
	if uint64(eventSize) != c["sizeof gpio_v2_line_event"] {
		t.Errorf("eventSize %d, kernel %d", eventSize, c["sizeof gpio_v2_line_event"])
	}
	for name, want := range c {
		got, ok := goSide[name]
		switch {
		case !ok:
			t.Errorf("%s: the probe prints it but the test does not check it", name)
		case got != want:
			t.Errorf("%s: Go %d (%#x), kernel header %d (%#x)", name, got, got, want, want)
		}
	}
	if len(c) != len(goSide) {
		t.Errorf("the probe printed %d values, the test checks %d", len(c), len(goSide))
	}
	t.Logf("%d sizes, offsets, constants and ioctl numbers match %s", len(c), kernelHeader)
}
