// Package capture records from a microphone through PortAudio and offers it as a
// domain.AudioSource at 16 kHz. Capture starts only when a clinician starts a session and
// stops with it: there is no passive listening.
package capture

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

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
	Channels int     // 1, or 2 for a clinician mic + patient mic pair
	Rate     float64 // 0 = the device's default rate
}

// Source is a live PortAudio capture. Its reader goroutine is owned by the Source and
// stopped by Close.
type Source struct {
	stream *portaudio.Stream
	nch    int
	out    chan [][]float32
	errc   chan error
	stop   chan struct{}
	once   sync.Once
	wg     sync.WaitGroup
}

// Open starts capturing.
func Open(opt Options) (*Source, error) {
	if opt.Channels < 1 || opt.Channels > 2 {
		return nil, fmt.Errorf("capture: %d channels requested; 1 or 2 are supported", opt.Channels)
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
	frames := int(rate / 10) // 100 ms reads
	buf := make([]float32, frames*opt.Channels)
	p := portaudio.StreamParameters{
		Input:           portaudio.StreamDeviceParameters{Device: dev, Channels: opt.Channels, Latency: dev.DefaultHighInputLatency},
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
	s := &Source{stream: stream, nch: opt.Channels, out: make(chan [][]float32, 50), errc: make(chan error, 1), stop: make(chan struct{})}
	s.wg.Add(1)
	go s.loop(buf, int(rate))
	return s, nil
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
	return nil, fmt.Errorf("capture: no device with index %d (see scribe devices)", index)
}

func (s *Source) loop(buf []float32, rate int) {
	defer s.wg.Done()
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
		if err := s.stream.Read(); err != nil {
			// An input overflow loses a little audio but the stream goes on.
			if errors.Is(err, portaudio.InputOverflowed) {
				continue
			}
			select {
			case s.errc <- fmt.Errorf("capture: %w", err):
			default:
			}
			return
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

// Read returns the next chunk of 16 kHz audio.
func (s *Source) Read(ctx context.Context) ([][]float32, error) {
	select {
	case c := <-s.out:
		return c, nil
	case err := <-s.errc:
		return nil, err
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
		// The reader notices stop after its current 100 ms read; then the stream stops.
		s.wg.Wait()
		err = s.stream.Stop()
		s.stream.Close()
		portaudio.Terminate()
	})
	return err
}
