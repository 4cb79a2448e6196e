package register

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"image"
	"image/color"
	"image/png"
	mrand "math/rand/v2"
)

// The image challenge: characters drawn from a built-in 5×7 bitmap font,
// scaled, each shifted and sheared at random, over noise and crossed by
// lines, encoded as PNG. No third party and no font files. The alphabet
// leaves out characters people confuse (0/O, 1/I/L, 2/Z, 5/S, 8/B).

// captchaAlphabet is what image challenges are made of.
const captchaAlphabet = "ACDEFHJKMNPRTUVWXY34679"

// glyphs are 5 columns × 7 rows; '#' is ink.
var glyphs = map[rune][7]string{
	'A': {".###.", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'C': {".###.", "#...#", "#....", "#....", "#....", "#...#", ".###."},
	'D': {"####.", "#...#", "#...#", "#...#", "#...#", "#...#", "####."},
	'E': {"#####", "#....", "#....", "####.", "#....", "#....", "#####"},
	'F': {"#####", "#....", "#....", "####.", "#....", "#....", "#...."},
	'H': {"#...#", "#...#", "#...#", "#####", "#...#", "#...#", "#...#"},
	'J': {"..###", "...#.", "...#.", "...#.", "...#.", "#..#.", ".##.."},
	'K': {"#...#", "#..#.", "#.#..", "##...", "#.#..", "#..#.", "#...#"},
	'M': {"#...#", "##.##", "#.#.#", "#.#.#", "#...#", "#...#", "#...#"},
	'N': {"#...#", "##..#", "#.#.#", "#..##", "#...#", "#...#", "#...#"},
	'P': {"####.", "#...#", "#...#", "####.", "#....", "#....", "#...."},
	'R': {"####.", "#...#", "#...#", "####.", "#.#..", "#..#.", "#...#"},
	'T': {"#####", "..#..", "..#..", "..#..", "..#..", "..#..", "..#.."},
	'U': {"#...#", "#...#", "#...#", "#...#", "#...#", "#...#", ".###."},
	'V': {"#...#", "#...#", "#...#", "#...#", "#...#", ".#.#.", "..#.."},
	'W': {"#...#", "#...#", "#...#", "#.#.#", "#.#.#", "##.##", "#...#"},
	'X': {"#...#", "#...#", ".#.#.", "..#..", ".#.#.", "#...#", "#...#"},
	'Y': {"#...#", "#...#", ".#.#.", "..#..", "..#..", "..#..", "..#.."},
	'3': {"####.", "....#", "....#", ".###.", "....#", "....#", "####."},
	'4': {"...#.", "..##.", ".#.#.", "#..#.", "#####", "...#.", "...#."},
	'6': {".###.", "#....", "#....", "####.", "#...#", "#...#", ".###."},
	'7': {"#####", "....#", "...#.", "..#..", ".#...", ".#...", ".#..."},
	'9': {".###.", "#...#", "#...#", ".####", "....#", "....#", ".###."},
}

// newRand returns a generator seeded from the system's secure source.
func newRand() *mrand.Rand {
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	return mrand.New(mrand.NewChaCha8(seed))
}

// randomText returns n characters of the alphabet, chosen uniformly by a
// generator seeded from crypto/rand.
func randomText(n int) string {
	r := newRand()
	b := make([]byte, n)
	for i := range b {
		b[i] = captchaAlphabet[r.IntN(len(captchaAlphabet))]
	}
	return string(b)
}

// Image sizes.
const (
	glyphScale = 6
	cellWidth  = 5*glyphScale + 12
	imgHeight  = 7*glyphScale + 30
)

// renderCaptcha draws text and returns the PNG and its size.
func renderCaptcha(text string) (data []byte, w, h int, err error) {
	r := newRand()
	w, h = len(text)*cellWidth+24, imgHeight
	pal := color.Palette{color.Gray{0xff}, color.Gray{0x20}, color.Gray{0x90}}
	img := image.NewPaletted(image.Rect(0, 0, w, h), pal)
	// Background noise.
	for i := 0; i < w*h/12; i++ {
		img.SetColorIndex(r.IntN(w), r.IntN(h), uint8(1+r.IntN(2)))
	}
	for i, ch := range text {
		g, ok := glyphs[ch]
		if !ok {
			return nil, 0, 0, fmt.Errorf("captcha: no glyph for %q", ch)
		}
		x0 := 12 + i*cellWidth + r.IntN(9) - 4
		y0 := 15 + r.IntN(13) - 6
		shear := (r.Float64() - 0.5) * 0.6 // pixels of x shift per pixel of y
		for gy, row := range g {
			for gx, c := range row {
				if c != '#' {
					continue
				}
				for dy := range glyphScale {
					for dx := range glyphScale {
						if r.IntN(10) == 0 {
							continue // ink dropout
						}
						y := y0 + gy*glyphScale + dy
						x := x0 + gx*glyphScale + dx + int(shear*float64(y-h/2))
						img.SetColorIndex(x, y, 1)
					}
				}
			}
		}
	}
	// Lines across the text.
	for range 4 {
		x1, y1, x2, y2 := 0, r.IntN(h), w-1, r.IntN(h)
		drawLine(img, x1, y1, x2, y2, uint8(1+r.IntN(2)))
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, 0, 0, fmt.Errorf("captcha: encoding: %w", err)
	}
	return buf.Bytes(), w, h, nil
}

// drawLine draws a 2-pixel-thick line (Bresenham).
func drawLine(img *image.Paletted, x1, y1, x2, y2 int, c uint8) {
	dx, dy := abs(x2-x1), -abs(y2-y1)
	sx, sy := 1, 1
	if x1 > x2 {
		sx = -1
	}
	if y1 > y2 {
		sy = -1
	}
	e := dx + dy
	for {
		img.SetColorIndex(x1, y1, c)
		img.SetColorIndex(x1, y1+1, c)
		if x1 == x2 && y1 == y2 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x1 += sx
		}
		if e2 <= dx {
			e += dx
			y1 += sy
		}
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
