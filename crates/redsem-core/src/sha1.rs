//! SHA-1 as a `const fn`, so each script's EVALSHA digest is computed once,
//! at compile time, without a hashing dependency.

/// The SHA-1 digest of `data`, as 40 lowercase hex digits.
pub(crate) const fn sha1_hex(data: &[u8]) -> [u8; 40] {
    let digest = sha1(data);
    let mut out = [0u8; 40];
    let hex = b"0123456789abcdef";
    let mut i = 0;
    while i < 20 {
        out[2 * i] = hex[(digest[i] >> 4) as usize];
        out[2 * i + 1] = hex[(digest[i] & 0x0f) as usize];
        i += 1;
    }
    out
}

const fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let bit_len = (data.len() as u64).wrapping_mul(8);
    // Message + 0x80 + zero padding + 8-byte length, rounded up to 64 bytes.
    let total = (data.len() + 9).div_ceil(64) * 64;
    let mut block_start = 0;
    while block_start < total {
        let mut w = [0u32; 80];
        let mut t = 0;
        while t < 16 {
            let mut word = 0u32;
            let mut b = 0;
            while b < 4 {
                let idx = block_start + t * 4 + b;
                word = (word << 8) | padded_byte(data, idx, total, bit_len) as u32;
                b += 1;
            }
            w[t] = word;
            t += 1;
        }
        while t < 80 {
            w[t] = (w[t - 3] ^ w[t - 8] ^ w[t - 14] ^ w[t - 16]).rotate_left(1);
            t += 1;
        }
        let (mut a, mut b, mut c, mut d, mut e) = (h[0], h[1], h[2], h[3], h[4]);
        let mut i = 0;
        while i < 80 {
            let (f, k) = if i < 20 {
                ((b & c) | (!b & d), 0x5A82_7999)
            } else if i < 40 {
                (b ^ c ^ d, 0x6ED9_EBA1)
            } else if i < 60 {
                ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC)
            } else {
                (b ^ c ^ d, 0xCA62_C1D6)
            };
            let temp = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(w[i]);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = temp;
            i += 1;
        }
        h[0] = h[0].wrapping_add(a);
        h[1] = h[1].wrapping_add(b);
        h[2] = h[2].wrapping_add(c);
        h[3] = h[3].wrapping_add(d);
        h[4] = h[4].wrapping_add(e);
        block_start += 64;
    }
    let mut out = [0u8; 20];
    let mut i = 0;
    while i < 5 {
        let bytes = h[i].to_be_bytes();
        out[4 * i] = bytes[0];
        out[4 * i + 1] = bytes[1];
        out[4 * i + 2] = bytes[2];
        out[4 * i + 3] = bytes[3];
        i += 1;
    }
    out
}

/// Byte `idx` of the padded message.
const fn padded_byte(data: &[u8], idx: usize, total: usize, bit_len: u64) -> u8 {
    if idx < data.len() {
        data[idx]
    } else if idx == data.len() {
        0x80
    } else if idx >= total - 8 {
        let shift = (total - 1 - idx) * 8;
        (bit_len >> shift) as u8
    } else {
        0
    }
}

#[cfg(test)]
mod tests {
    use super::sha1_hex;

    fn hex(data: &str) -> String {
        String::from_utf8_lossy(&sha1_hex(data.as_bytes())).into_owned()
    }

    #[test]
    fn known_vectors() {
        assert_eq!(hex(""), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(hex("abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
        assert_eq!(
            hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        // 55, 56 and 64 bytes exercise the padding edges.
        assert_eq!(
            hex(&"a".repeat(55)),
            "c1c8bbdc22796e28c0e15163d20899b65621d65a"
        );
        assert_eq!(
            hex(&"a".repeat(56)),
            "c2db330f6083854c99d4b5bfb6e8f29f201be699"
        );
        assert_eq!(
            hex(&"a".repeat(64)),
            "0098ba824b5c16427bd7a1122a5a442a25ec644d"
        );
    }
}
