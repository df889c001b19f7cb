package rtmp

import (
	"crypto/rc4"
	"io"
)

// rc4ReadWriter encrypts and decrypts an RTMPE connection after the encrypted
// handshake (handshake.DoServer returns the two keys; gortmplib's own wrapper is
// unexported). RC4 is what the protocol prescribes; it offers no real security.
type rc4ReadWriter struct {
	rw  io.ReadWriter
	in  *rc4.Cipher
	out *rc4.Cipher
	buf []byte
}

func newRC4ReadWriter(rw io.ReadWriter, keyIn, keyOut []byte) (*rc4ReadWriter, error) {
	in, err := rc4.NewCipher(keyIn)
	if err != nil {
		return nil, err
	}
	out, err := rc4.NewCipher(keyOut)
	if err != nil {
		return nil, err
	}
	// RTMPE discards the first 1536 bytes of both key streams.
	p := make([]byte, 1536)
	in.XORKeyStream(p, p)
	out.XORKeyStream(p, p)
	return &rc4ReadWriter{rw: rw, in: in, out: out}, nil
}

func (r *rc4ReadWriter) Read(p []byte) (int, error) {
	n, err := r.rw.Read(p)
	r.in.XORKeyStream(p[:n], p[:n])
	return n, err
}

// Write encrypts into a private buffer so that p is left untouched.
func (r *rc4ReadWriter) Write(p []byte) (int, error) {
	if cap(r.buf) < len(p) {
		r.buf = make([]byte, len(p))
	}
	b := r.buf[:len(p)]
	r.out.XORKeyStream(b, p)
	return r.rw.Write(b)
}
