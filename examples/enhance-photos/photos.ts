import sharp from 'sharp';

/** A small, deterministic test photo: a dim, washed-out gradient that enhancement visibly improves. */
export async function makePhoto(seed: number, width = 320, height = 240): Promise<Buffer> {
  const pixels = Buffer.alloc(width * height * 3);
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      const i = (y * width + x) * 3;
      pixels[i] = 60 + Math.round((x / width) * 60) + ((seed * 13) % 20);
      pixels[i + 1] = 70 + Math.round((y / height) * 50);
      pixels[i + 2] = 80 + Math.round(((x + y) / (width + height)) * 40) + ((seed * 7) % 15);
    }
  }
  return sharp(pixels, { raw: { width, height, channels: 3 } })
    .jpeg({ quality: 85 })
    .toBuffer();
}
