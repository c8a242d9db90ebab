package identifiers

import "testing"

func TestCheck(t *testing.T) {
	good := map[Body][]string{GMC: {"1234567", "L123456"}, NMC: {"12A3456E"}, GPhC: {"2034567"}, HCPC: {"PA12345", "OT1234"}}
	bad := map[Body][]string{GMC: {"123456", "L12345", "X123456"}, NMC: {"12A3456", "123456E"}, GPhC: {"123456"}, HCPC: {"P12345", "PA123"}}
	for b, ns := range good {
		for _, n := range ns {
			if err := Check(b, n); err != nil {
				t.Errorf("%s %s: %v", b, n, err)
			}
		}
	}
	for b, ns := range bad {
		for _, n := range ns {
			if err := Check(b, n); err == nil {
				t.Errorf("%s %s accepted", b, n)
			}
		}
	}
	if b, err := ParseBody("gphc"); err != nil || b != GPhC {
		t.Errorf("ParseBody(gphc) = %v, %v", b, err)
	}
	if err := CheckSDS("123456789012"); err != nil {
		t.Error(err)
	}
	if err := CheckSDS("12345"); err == nil {
		t.Error("short SDS id accepted")
	}
}
