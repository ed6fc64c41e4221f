/**
 * Static export (no Node process on the host): `next build` writes `out/`, which nginx serves.
 * trailingSlash: every page is `<route>/index.html`, so nginx needs no rewrite rules.
 * @type {import('next').NextConfig}
 */
const nextConfig = {
  output: 'export',
  trailingSlash: true,
  reactStrictMode: true,
  poweredByHeader: false,
  images: { unoptimized: true },
};

export default nextConfig;
