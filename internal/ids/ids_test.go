package ids

import "testing"

func TestGUIDs(t *testing.T) {
	for s, want := range map[string]bool{
		"6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d34": true, "6D3F2A10-4B8C-4E7A-9F21-0C5E8B7A9D34": true,
		"6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9d3": false, "6d3f2a10x4b8c-4e7a-9f21-0c5e8b7a9d34": false,
		"6d3f2a10-4b8c-4e7a-9f21-0c5e8b7a9dz4": false, "": false, "contoso.onmicrosoft.com": false,
	} {
		if IsGUID(s) != want {
			t.Errorf("IsGUID(%q) = %v", s, !want)
		}
	}
	a, b := NewGUID(), NewGUID()
	if !IsGUID(a) || a == b || a[14] != '4' {
		t.Errorf("NewGUID: %q %q", a, b)
	}
}
