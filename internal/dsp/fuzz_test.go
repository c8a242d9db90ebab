package dsp

import (
	"encoding/binary"
	"math"
	"testing"
)

func FuzzChain(f *testing.F) {
	seed := make([]byte, 4*3000)
	for i, v := range MixAtSNR(tone(3000, 200, 0.5), WhiteNoise(3000, 1), nil, Rate, 0) {
		binary.LittleEndian.PutUint32(seed[4*i:], math.Float32bits(v))
	}
	f.Add(seed, uint16(100), uint8(0xff))
	f.Add([]byte{0, 0, 0xc0, 0x7f, 0, 0, 0x80, 0x7f, 0xff, 0xff, 0xff, 0x7f}, uint16(1), uint8(0x0f)) // NaN, +Inf, MaxFloat32
	f.Add([]byte{}, uint16(0), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, chunk uint16, stages uint8) {
		// A quarter second (16 STFT hops) reaches every code path and keeps executions fast.
		in := make([]float32, min(len(data)/4, 4096))
		for i := range in {
			in[i] = math.Float32frombits(binary.LittleEndian.Uint32(data[4*i:]))
		}
		cfg := Config{
			HighPass: stages&1 != 0, NoiseSuppression: stages&2 != 0, AGC: stages&4 != 0,
			TargetDBFS: -float64(stages>>4) * 2, MaxGainDB: float64(stages >> 3),
		}
		if stages&8 != 0 {
			cfg.LimiterCeiling = -1
		}
		want := ProcessAll(cfg, in)
		if len(want) != len(in) {
			t.Fatalf("ProcessAll: %d samples for %d", len(want), len(in))
		}
		c := NewChain(cfg)
		var got []float32
		step := int(chunk%2048) + 1
		for i := 0; i < len(in); i += step {
			got = append(got, c.Process(in[i:min(i+step, len(in))])...)
		}
		got = append(got, c.Flush()...)[c.Latency():]
		ceiling := cfg.normalized().LimiterCeiling
		for i, v := range got {
			if v != want[i] && !(math.IsNaN(float64(v)) && math.IsNaN(float64(want[i]))) {
				t.Fatalf("sample %d: streamed %v, ProcessAll %v", i, v, want[i])
			}
			if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
				t.Fatalf("sample %d is %v", i, v)
			}
			if ceiling > 0 && math.Abs(float64(v)) > ceiling {
				t.Fatalf("sample %d = %v beyond ceiling %v", i, v, ceiling)
			}
		}
	})
}
