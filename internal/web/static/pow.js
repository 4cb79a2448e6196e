// stoa web sign-up: solves the proof of work (ALTCHA, SHA-256) of the
// form, without any dependency. The challenge is the JSON in the form's
// data-challenge attribute: find n <= maxnumber with
// hex(SHA-256(salt + n)) == challenge, then put the base64 of
// {algorithm, challenge, number, salt, signature} in the "pow" field.
// The form is sent when both the solution is found and the minimum time
// (minms) has passed since the page was shown.
(function () {
  'use strict';

  var K = new Uint32Array([
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2
  ]);
  var W = new Uint32Array(64);
  var H = new Int32Array(8);

  // sha256 hashes an ASCII string into H (eight 32-bit words).
  function sha256(str) {
    var n = str.length;
    var words = ((n + 8) >> 6) * 16 + 16;
    var M = new Uint32Array(words);
    var i;
    for (i = 0; i < n; i++) {
      M[i >> 2] |= (str.charCodeAt(i) & 0xff) << (24 - (i & 3) * 8);
    }
    M[n >> 2] |= 0x80 << (24 - (n & 3) * 8);
    M[words - 1] = n * 8;
    var h0 = 0x6a09e667, h1 = 0xbb67ae85 | 0, h2 = 0x3c6ef372, h3 = 0xa54ff53a | 0,
      h4 = 0x510e527f, h5 = 0x9b05688c | 0, h6 = 0x1f83d9ab, h7 = 0x5be0cd19;
    for (var off = 0; off < words; off += 16) {
      var t;
      for (t = 0; t < 16; t++) W[t] = M[off + t];
      for (t = 16; t < 64; t++) {
        var x = W[t - 15], y = W[t - 2];
        var s0 = ((x >>> 7) | (x << 25)) ^ ((x >>> 18) | (x << 14)) ^ (x >>> 3);
        var s1 = ((y >>> 17) | (y << 15)) ^ ((y >>> 19) | (y << 13)) ^ (y >>> 10);
        W[t] = (W[t - 16] + s0 + W[t - 7] + s1) | 0;
      }
      var a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7;
      for (t = 0; t < 64; t++) {
        var S1 = ((e >>> 6) | (e << 26)) ^ ((e >>> 11) | (e << 21)) ^ ((e >>> 25) | (e << 7));
        var t1 = (h + S1 + ((e & f) ^ (~e & g)) + K[t] + W[t]) | 0;
        var S0 = ((a >>> 2) | (a << 30)) ^ ((a >>> 13) | (a << 19)) ^ ((a >>> 22) | (a << 10));
        var t2 = (S0 + ((a & b) ^ (a & c) ^ (b & c))) | 0;
        h = g; g = f; f = e; e = (d + t1) | 0; d = c; c = b; b = a; a = (t1 + t2) | 0;
      }
      h0 = (h0 + a) | 0; h1 = (h1 + b) | 0; h2 = (h2 + c) | 0; h3 = (h3 + d) | 0;
      h4 = (h4 + e) | 0; h5 = (h5 + f) | 0; h6 = (h6 + g) | 0; h7 = (h7 + h) | 0;
    }
    H[0] = h0; H[1] = h1; H[2] = h2; H[3] = h3; H[4] = h4; H[5] = h5; H[6] = h6; H[7] = h7;
  }

  // hexWords parses 64 hex digits into eight 32-bit words.
  function hexWords(hex) {
    var out = new Int32Array(8);
    for (var i = 0; i < 8; i++) out[i] = parseInt(hex.substr(i * 8, 8), 16) | 0;
    return out;
  }

  function now() {
    return (window.performance && performance.now) ? performance.now() : Date.now();
  }

  // solve tries numbers in slices of about 40 ms, so that the page stays
  // responsive, and calls done(n), or done(-1) when nothing matched.
  function solve(ch, done) {
    var want = hexWords(ch.challenge);
    var n = 0;
    function slice() {
      var until = now() + 40;
      while (n <= ch.maxnumber) {
        sha256(ch.salt + n);
        if (H[0] === want[0] && H[1] === want[1] && H[2] === want[2] && H[3] === want[3] &&
            H[4] === want[4] && H[5] === want[5] && H[6] === want[6] && H[7] === want[7]) {
          done(n);
          return;
        }
        n++;
        if ((n & 1023) === 0 && now() > until) {
          setTimeout(slice, 0);
          return;
        }
      }
      done(-1);
    }
    slice();
  }

  function init() {
    var errors = document.getElementById('errors');
    if (errors) errors.focus();
    var form = document.getElementById('signup');
    if (!form) return;
    var ch;
    try {
      ch = JSON.parse(form.getAttribute('data-challenge'));
    } catch (e) {
      return;
    }
    if (!ch || ch.algorithm !== 'SHA-256') return;
    var status = document.getElementById('pow-status');
    var field = document.getElementById('pow');
    var button = document.getElementById('send');
    var shown = now();
    var solved = false, wanted = false, sending = false;
    function say(which) { status.textContent = status.getAttribute('data-' + which); }
    function maybeSend() {
      if (!solved || !wanted || sending) return;
      var wait = (ch.minms || 0) - (now() - shown);
      if (wait > 0) {
        setTimeout(maybeSend, wait + 100);
        return;
      }
      sending = true;
      say('sending');
      // Not form.submit: a control named 'submit' would shadow it. This
      // does not fire 'submit' again.
      HTMLFormElement.prototype.submit.call(form);
    }
    form.addEventListener('submit', function (ev) {
      ev.preventDefault();
      wanted = true;
      if (button) button.disabled = true;
      say(solved ? 'sending' : 'working');
      maybeSend();
    });
    say('working');
    solve(ch, function (n) {
      if (n < 0) return;
      field.value = btoa(JSON.stringify({
        algorithm: ch.algorithm, challenge: ch.challenge, number: n, salt: ch.salt, signature: ch.signature
      }));
      solved = true;
      if (!wanted) say('done');
      maybeSend();
    });
  }

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', init);
  } else {
    init();
  }
})();
