package gpio

// The Linux GPIO character device ABI v2 (include/uapi/linux/gpio.h), mirrored in Go so
// that the package needs no cgo. Every struct has explicit padding, so the Go layout
// equals the C layout on 32- and 64-bit ARM and x86 alike; uapi_test.go compiles a C
// program against the real kernel header and compares sizes, offsets and ioctl numbers.

const (
	maxNameSize     = 32 // GPIO_MAX_NAME_SIZE
	linesMax        = 64 // GPIO_V2_LINES_MAX
	lineNumAttrsMax = 10 // GPIO_V2_LINE_NUM_ATTRS_MAX
)

// Line flags (enum gpio_v2_line_flag).
const (
	flagUsed          uint64 = 1 << 0
	flagActiveLow     uint64 = 1 << 1
	flagInput         uint64 = 1 << 2
	flagOutput        uint64 = 1 << 3
	flagEdgeRising    uint64 = 1 << 4
	flagEdgeFalling   uint64 = 1 << 5
	flagBiasPullUp    uint64 = 1 << 8
	flagBiasPullDown  uint64 = 1 << 9
	flagBiasDisabled  uint64 = 1 << 10
	flagClockRealtime uint64 = 1 << 11
)

// Attribute ids (enum gpio_v2_line_attr_id).
const (
	attrIDFlags        uint32 = 1
	attrIDOutputValues uint32 = 2
	attrIDDebounce     uint32 = 3
)

// Event ids (enum gpio_v2_line_event_id).
const (
	eventRisingEdge  uint32 = 1
	eventFallingEdge uint32 = 2
)

// struct gpiochip_info
type chipInfo struct {
	Name  [maxNameSize]byte
	Label [maxNameSize]byte
	Lines uint32
}

// struct gpio_v2_line_attribute: Value is the union of flags, values and
// debounce_period_us (the last in its low 32 bits on little-endian machines).
type lineAttribute struct {
	ID      uint32
	Padding uint32
	Value   uint64
}

// struct gpio_v2_line_config_attribute
type lineConfigAttribute struct {
	Attr lineAttribute
	Mask uint64
}

// struct gpio_v2_line_config
type lineConfig struct {
	Flags    uint64
	NumAttrs uint32
	Padding  [5]uint32
	Attrs    [lineNumAttrsMax]lineConfigAttribute
}

// struct gpio_v2_line_request
type lineRequest struct {
	Offsets         [linesMax]uint32
	Consumer        [maxNameSize]byte
	Config          lineConfig
	NumLines        uint32
	EventBufferSize uint32
	Padding         [5]uint32
	Fd              int32
}

// struct gpio_v2_line_values
type lineValues struct {
	Bits uint64
	Mask uint64
}

// struct gpio_v2_line_event: what a read from a line request fd returns, one per edge.
type lineEvent struct {
	TimestampNs uint64
	ID          uint32
	Offset      uint32
	Seqno       uint32
	LineSeqno   uint32
	Padding     [6]uint32
}

// eventSize is sizeof(struct gpio_v2_line_event).
const eventSize = 48

// The asm-generic _IOC encoding, used by arm, arm64, x86 and riscv (the boards scribe's
// agent runs on): direction in bits 30-31, size in 16-29, type in 8-15, number in 0-7.
const (
	iocWrite = 1
	iocRead  = 2
	gpioType = 0xB4
)

func ioc(dir, nr, size uintptr) uintptr {
	return dir<<30 | size<<16 | gpioType<<8 | nr
}

var (
	ioctlGetChipInfo   = ioc(iocRead, 0x01, 68)           // GPIO_GET_CHIPINFO_IOCTL
	ioctlGetLine       = ioc(iocRead|iocWrite, 0x07, 592) // GPIO_V2_GET_LINE_IOCTL
	ioctlGetLineValues = ioc(iocRead|iocWrite, 0x0E, 16)  // GPIO_V2_LINE_GET_VALUES_IOCTL
	ioctlSetLineValues = ioc(iocRead|iocWrite, 0x0F, 16)  // GPIO_V2_LINE_SET_VALUES_IOCTL
)
