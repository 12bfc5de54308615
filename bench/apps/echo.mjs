// A host application for the cold-start benchmark: a TCP echo server on port 7.
export default async function echo({ net }) {
  net.createServer((s) => {
    s.on('error', () => {});
    s.pipe(s);
  }).listen(7);
}
