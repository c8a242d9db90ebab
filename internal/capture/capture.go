// Package capture records from a microphone through PortAudio and offers it as a
// domain.AudioSource at 16 kHz. Capture starts only when a clinician starts a session and
// stops with it: there is no passive listening.
package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gordonklaus/portaudio"

	"scribe/internal/audio"
	"scribe/internal/domain"
)

// Device is an input device.
type Device struct {
	Index       int     `json:"index"`
	Name        string  `json:"name"`
	HostAPI     string  `json:"host_api"`
	Channels    int     `json:"channels"`
	DefaultRate float64 `json:"default_rate"`
	Default     bool    `json:"default"`
}

// ErrNoDevices means PortAudio found no input device (no sound card, or no permission:
// the service user needs the audio group).
var ErrNoDevices = errors.New("no audio input devices found (is a microphone connected, and is the user in the 'audio' group?)")

// Devices lists input devices.
func Devices() ([]Device, error) {
	if err := initialize(); err != nil {
		return nil, fmt.Errorf("capture: PortAudio: %w", err)
	}
	defer portaudio.Terminate()
	all, err := portaudio.Devices()
	if err != nil {
		return nil, fmt.Errorf("capture: listing devices: %w", err)
	}
	def, _ := portaudio.DefaultInputDevice()
	var out []Device
	for _, d := range all {
		if d.MaxInputChannels < 1 {
			continue
		}
		host := ""
		if d.HostApi != nil {
			host = d.HostApi.Name
		}
		out = append(out, Device{Index: d.Index, Name: d.Name, HostAPI: host, Channels: d.MaxInputChannels,
			DefaultRate: d.DefaultSampleRate, Default: def != nil && def.Index == d.Index})
	}
	if len(out) == 0 {
		return nil, ErrNoDevices
	}
	return out, nil
}

// Options choose the device and format. Index -1 is the default input device.
type Options struct {
	Device   int
	Channels int     // 1; 2 for a clinician mic + patient mic pair; up to MaxChannels for an array's capsules
	Rate     float64 // 0 = the device's default rate
}

// MaxChannels is the most channels captured at once (the capsules of an 8-capsule array).
const MaxChannels = 8

// ErrNoSuchDevice means Options.Device names no PortAudio device.
var ErrNoSuchDevice = errors.New("no such audio device")

// readPeriod is how much audio one blocking read returns.
const readPeriod = 100 * time.Millisecond

// blockingReader is the part of a PortAudio stream the reader goroutine uses: Read fills
// the buffer given to OpenStream.
type blockingReader interface {
	Read() error
}

// Source is a live PortAudio capture. Its reader goroutine is owned by the Source and
// stopped by Close.
type Source struct {
	stream    *portaudio.Stream
	reader    blockingReader
	nch       int
	out       chan [][]float32
	stop      chan struct{}
	done      chan struct{} // closed when the reader goroutine has ended
	err       error         // why the reader ended; written before done is closed
	overflows atomic.Int64
	once      sync.Once
	wg        sync.WaitGroup
}

// Open starts capturing.
func Open(opt Options) (*Source, error) {
	if opt.Channels < 1 || opt.Channels > MaxChannels {
		return nil, fmt.Errorf("capture: %d channels requested; 1 to %d are supported", opt.Channels, MaxChannels)
	}
	if err := initialize(); err != nil {
		return nil, fmt.Errorf("capture: PortAudio: %w", err)
	}
	dev, err := pick(opt.Device)
	if err != nil {
		portaudio.Terminate()
		return nil, err
	}
	if dev.MaxInputChannels < opt.Channels {
		portaudio.Terminate()
		return nil, fmt.Errorf("capture: device %q has %d input channels, %d requested", dev.Name, dev.MaxInputChannels, opt.Channels)
	}
	rate := opt.Rate
	if rate == 0 {
		rate = dev.DefaultSampleRate
	}
	if rate < audio.MinRate || rate > 384000 {
		portaudio.Terminate()
		return nil, fmt.Errorf("capture: sample rate %.0f Hz is out of range", rate)
	}
	frames := int(rate * readPeriod.Seconds())
	buf := make([]float32, frames*opt.Channels)
	p := portaudio.StreamParameters{
		Input: portaudio.StreamDeviceParameters{Device: dev, Channels: opt.Channels,
			// At least two reads' worth of device buffer, so that a pause on our side (a GC,
			// a busy core) shorter than one read never overruns the sound card.
			Latency: max(dev.DefaultHighInputLatency, 2*readPeriod)},
		SampleRate:      rate,
		FramesPerBuffer: frames,
	}
	stream, err := portaudio.OpenStream(p, buf)
	if err != nil {
		portaudio.Terminate()
		return nil, fmt.Errorf("capture: opening %q at %.0f Hz: %w", dev.Name, rate, err)
	}
	if err := stream.Start(); err != nil {
		stream.Close()
		portaudio.Terminate()
		return nil, fmt.Errorf("capture: starting %q: %w", dev.Name, err)
	}
	s := newSource(stream, opt.Channels, buf, int(rate))
	s.stream = stream
	return s, nil
}

// newSource starts the reader goroutine over r, which fills buf (interleaved, nch
// channels at rate Hz) on each Read.
func newSource(r blockingReader, nch int, buf []float32, rate int) *Source {
	s := &Source{reader: r, nch: nch, out: make(chan [][]float32, 50),
		stop: make(chan struct{}), done: make(chan struct{})}
	s.wg.Add(1)
	go s.loop(buf, rate)
	return s
}

func pick(index int) (*portaudio.DeviceInfo, error) {
	if index < 0 {
		d, err := portaudio.DefaultInputDevice()
		if err != nil || d == nil {
			return nil, ErrNoDevices
		}
		return d, nil
	}
	all, err := portaudio.Devices()
	if err != nil {
		return nil, fmt.Errorf("capture: listing devices: %w", err)
	}
	for _, d := range all {
		if d.Index == index {
			return d, nil
		}
	}
	return nil, fmt.Errorf("capture: device index %d: %w (%d devices; see scribe devices)", index, ErrNoSuchDevice, len(all))
}

func (s *Source) loop(buf []float32, rate int) {
	defer s.wg.Done()
	defer close(s.done)
	rs := make([]*audio.Resampler, s.nch)
	for i := range rs {
		rs[i] = audio.NewResampler(rate, domain.SampleRate)
	}
	frames := len(buf) / s.nch
	for {
		select {
		case <-s.stop:
			return
		default:
		}
		if err := s.reader.Read(); err != nil {
			// PortAudio reports an overrun on the read after it happened, with that read's
			// buffer filled as usual: the audio lost is the device's, before this buffer.
			// Keep the buffer and count the gap.
			if !errors.Is(err, portaudio.InputOverflowed) {
				s.err = fmt.Errorf("capture: reading: %w", err)
				return
			}
			if n := s.overflows.Add(1); n == 1 || n%50 == 0 {
				slog.Warn("capture: input overflow, some audio was lost", "overflows", n)
			}
		}
		chunk := make([][]float32, s.nch)
		for c := range s.nch {
			ch := make([]float32, frames)
			for i := range frames {
				ch[i] = buf[i*s.nch+c]
			}
			chunk[c] = rs[c].Process(ch)
		}
		select {
		case s.out <- chunk:
		case <-s.stop:
			return
		}
	}
}

// Channels is the number of captured channels.
func (s *Source) Channels() int { return s.nch }

// Overflows counts the input overruns so far: each is a gap where the device had audio
// that scribe did not read in time (the transcript may miss words there).
func (s *Source) Overflows() int { return int(s.overflows.Load()) }

// Read returns the next chunk of 16 kHz audio. After Close it returns io.EOF; if the
// device fails it returns the audio read before the failure, then the error.
func (s *Source) Read(ctx context.Context) ([][]float32, error) {
	select {
	case <-s.stop:
		return nil, io.EOF
	default:
	}
	select {
	case c := <-s.out:
		return c, nil
	case <-s.done:
		select {
		case c := <-s.out:
			return c, nil
		default:
		}
		select {
		case <-s.stop:
			return nil, io.EOF
		default:
			return nil, s.err
		}
	case <-s.stop:
		return nil, io.EOF
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Close stops capturing and releases the device.
func (s *Source) Close() error {
	var err error
	s.once.Do(func() {
		close(s.stop)
		// The reader notices stop after its current read (at most one read period on a
		// live device); only then may the stream be stopped, as PortAudio streams are not
		// safe to use from two threads at once.
		s.wg.Wait()
		if s.stream == nil {
			return
		}
		if e := s.stream.Stop(); e != nil {
			err = fmt.Errorf("capture: stopping: %w", e)
		}
		if e := s.stream.Close(); e != nil && err == nil {
			err = fmt.Errorf("capture: closing: %w", e)
		}
		portaudio.Terminate()
	})
	return err
}
