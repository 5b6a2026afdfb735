// The independent SSH client used by the exchange tests: python's `cryptography` (OpenSSL in its
// wheel, or the system's) for X25519, NIST ECDH, ML-KEM-768 and Ed25519, python integers for
// finite-field DH, hashlib for the exchange hash and key derivation. The MODP primes are
// recomputed from the formula in RFC 3526 / RFC 2409 (pi by Machin's formula), so the groups
// are checked against the RFC text rather than against OpenSSL's tables.
// Protocol: one JSON request per line on stdin, one JSON answer per line on stdout.
let pythonKexClient = #"""
    import sys, json, hashlib, secrets
    from cryptography.hazmat.primitives.asymmetric import x25519, ec, ed25519, mlkem
    from cryptography.hazmat.primitives import serialization

    def s(b): return len(b).to_bytes(4, 'big') + b
    def u32(n): return n.to_bytes(4, 'big')
    def mpint(n): return s(n.to_bytes((n.bit_length() + 8) // 8, 'big') if n else b'')

    class Reader:
        def __init__(self, b): self.b, self.i = b, 0
        def byte(self):
            self.i += 1; return self.b[self.i - 1]
        def string(self):
            n = int.from_bytes(self.b[self.i:self.i + 4], 'big'); self.i += 4 + n
            assert self.i <= len(self.b), 'truncated'
            return self.b[self.i - n:self.i]
        def mpint(self):
            v = self.string(); assert not v or v[0] < 0x80, 'negative'
            return int.from_bytes(v, 'big')
        def end(self): assert self.i == len(self.b), 'trailing bytes'

    def pi_scaled(bits):
        # pi * 2^bits by Machin's formula in integer arithmetic, with guard bits.
        guard = 64; one = 1 << (bits + guard)
        def arctan_inv(x):
            total, term, n, sign, x2 = 0, one // x, 1, 1, x * x
            while term:
                total += sign * (term // n); term //= x2; n += 2; sign = -sign
            return total
        return (16 * arctan_inv(5) - 4 * arctan_inv(239)) >> guard

    # RFC 2409 §6.2 (1024) and RFC 3526 (2048-8192): p = 2^N - 2^(N-64) - 1 + 2^64 * (floor(2^(N-130) pi) + offset).
    OFFSETS = {1024: 129093, 2048: 124476, 3072: 1690314, 4096: 240904, 6144: 929484, 8192: 4743158}
    def modp(n): return 2**n - 2**(n - 64) - 1 + 2**64 * (pi_scaled(n - 130) + OFFSETS[n])

    HASH = {'curve25519-sha256': 'sha256', 'curve25519-sha256@libssh.org': 'sha256', 'ecdh-sha2-nistp256': 'sha256',
            'ecdh-sha2-nistp384': 'sha384', 'ecdh-sha2-nistp521': 'sha512', 'mlkem768x25519-sha256': 'sha256',
            'diffie-hellman-group1-sha1': 'sha1', 'diffie-hellman-group14-sha1': 'sha1',
            'diffie-hellman-group14-sha256': 'sha256', 'diffie-hellman-group16-sha512': 'sha512',
            'diffie-hellman-group18-sha512': 'sha512', 'diffie-hellman-group-exchange-sha1': 'sha1',
            'diffie-hellman-group-exchange-sha256': 'sha256'}
    FIXED = {'diffie-hellman-group1-sha1': 1024, 'diffie-hellman-group14-sha1': 2048, 'diffie-hellman-group14-sha256': 2048,
             'diffie-hellman-group16-sha512': 4096, 'diffie-hellman-group18-sha512': 8192}
    CURVES = {'ecdh-sha2-nistp256': ec.SECP256R1(), 'ecdh-sha2-nistp384': ec.SECP384R1(), 'ecdh-sha2-nistp521': ec.SECP521R1()}

    def kdf(hname, K, H, sid, letter, length):
        out = hashlib.new(hname, K + H + bytes([letter]) + sid).digest()
        while len(out) < length: out += hashlib.new(hname, K + H + out).digest()
        return out[:length]

    st = {}
    def handle(req):
        op = req['op']; h = lambda k: bytes.fromhex(req[k])
        if op == 'primes':
            return {str(n): format(modp(n), 'x') for n in OFFSETS}
        if op == 'derive':
            return {'key': kdf(req['hash'], h('K'), h('H'), h('sid'), req['letter'], req['length']).hex()}
        if op == 'x25519':
            k = x25519.X25519PrivateKey.from_private_bytes(h('scalar'))
            return {'shared': k.exchange(x25519.X25519PublicKey.from_public_bytes(h('u'))).hex()}
        if op == 'start':
            st.clear(); st.update(alg=req['alg'], prefix=s(h('vc')) + s(h('vs')) + s(h('ic')) + s(h('is')))
            alg = st['alg']
            if alg.startswith('curve25519'):
                st['x'] = x25519.X25519PrivateKey.generate()
                st['c'] = st['x'].public_key().public_bytes_raw()
            elif alg in CURVES:
                st['x'] = ec.generate_private_key(CURVES[alg])
                st['c'] = st['x'].public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
            elif alg.startswith('mlkem'):
                st['kem'] = mlkem.MLKEM768PrivateKey.generate(); st['x'] = x25519.X25519PrivateKey.generate()
                st['c'] = st['kem'].public_key().public_bytes_raw() + st['x'].public_key().public_bytes_raw()
            elif alg in FIXED:
                st['p'], st['g'] = modp(FIXED[alg]), 2
                return {'message': dh_init(30).hex()}
            elif 'group-exchange' in alg:
                if 'old' in req:  # KEX_DH_GEX_REQUEST_OLD: n alone, in the message and in H
                    st['req'] = u32(req['n'])
                    return {'message': (bytes([30]) + st['req']).hex()}
                st['req'] = u32(req['min']) + u32(req['n']) + u32(req['max'])
                return {'message': (bytes([34]) + st['req']).hex()}
            return {'message': (bytes([30]) + s(st['c'])).hex()}
        if op == 'group':
            r = Reader(h('reply')); assert r.byte() == 31
            p, g = r.mpint(), r.mpint(); r.end()
            known = [n for n in OFFSETS if modp(n) == p]
            st['p'], st['g'] = p, g
            return {'message': dh_init(32).hex(), 'bits': known[0] if known else 0, 'g': g}
        if op == 'finish':
            alg = st['alg']; r = Reader(h('reply'))
            number = r.byte(); ks = r.string()
            dh = 'p' in st
            if dh:
                f = r.mpint(); sig = r.string(); r.end()
                if not 1 < f < st['p'] - 1: return {'error': 'f out of range'}
                K = mpint(pow(f, st['y'], st['p']))
                extra = (st['req'] + mpint(st['p']) + mpint(st['g'])) if 'req' in st else b''
                body = st['prefix'] + s(ks) + extra + mpint(st['e']) + mpint(f) + K
            else:
                qs = r.string(); sig = r.string(); r.end()
                if alg.startswith('curve25519'):
                    K = mpint(int.from_bytes(st['x'].exchange(x25519.X25519PublicKey.from_public_bytes(qs)), 'big'))
                elif alg in CURVES:
                    peer = ec.EllipticCurvePublicKey.from_encoded_point(CURVES[alg], qs)
                    K = mpint(int.from_bytes(st['x'].exchange(ec.ECDH(), peer), 'big'))
                else:
                    if len(qs) != 1088 + 32: return {'error': 'S_REPLY length %d' % len(qs)}
                    ss = st['kem'].decapsulate(qs[:1088])
                    xs = st['x'].exchange(x25519.X25519PublicKey.from_public_bytes(qs[1088:]))
                    K = s(hashlib.sha256(ss + xs).digest())
                body = st['prefix'] + s(ks) + s(st['c']) + s(qs) + K
            H = hashlib.new(HASH[alg], body).digest()
            kr, sr = Reader(ks), Reader(sig)
            assert kr.string() == b'ssh-ed25519' and sr.string() == b'ssh-ed25519'
            try:
                ed25519.Ed25519PublicKey.from_public_bytes(kr.string()).verify(sr.string(), H); ok = True
            except Exception:
                ok = False
            return {'number': number, 'H': H.hex(), 'K': K.hex(), 'signature_ok': ok}
        raise ValueError(op)

    def dh_init(number):
        st['y'] = secrets.randbits(512) | (1 << 511)
        st['e'] = pow(st['g'], st['y'], st['p'])
        return bytes([number]) + mpint(st['e'])

    for line in sys.stdin:
        try:
            out = handle(json.loads(line))
        except Exception as error:
            out = {'error': repr(error)}
        print(json.dumps(out), flush=True)
    """#
