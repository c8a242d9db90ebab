package capture

import (
	"os"
	"syscall"

	"github.com/gordonklaus/portaudio"
)

// initialize starts PortAudio with stderr silenced: ALSA and JACK print dozens of lines
// while PortAudio probes devices that do not exist on a small box (surround51, hdmi,
// jack server…), which would bury scribe's own messages. SCRIBE_AUDIO_DEBUG=1 keeps them.
func initialize() error {
	if os.Getenv("SCRIBE_AUDIO_DEBUG") != "" {
		return portaudio.Initialize()
	}
	var err error
	quietly(func() { err = portaudio.Initialize() })
	return err
}

// quietly runs f with file descriptor 2 pointed at /dev/null.
func quietly(f func()) {
	null, err := os.OpenFile(os.DevNull, os.O_WRONLY, 0)
	if err != nil {
		f()
		return
	}
	defer null.Close()
	saved, err := syscall.Dup(2)
	if err != nil {
		f()
		return
	}
	defer syscall.Close(saved)
	if err := syscall.Dup3(int(null.Fd()), 2, 0); err != nil {
		f()
		return
	}
	defer syscall.Dup3(saved, 2, 0)
	f()
}
