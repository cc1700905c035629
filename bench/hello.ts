/**
 * node:http alone, no proxying: the floor under every Node server here. Answers what the
 * upstream answers. `node dist/bench/hello.js PORT`
 */
import { createServer } from 'node:http'

const BODY = Buffer.from('{"message":"pong"}')
createServer((req, res) => {
  req.resume()
  res.writeHead(200, { 'content-type': 'application/json', 'content-length': BODY.length })
  res.end(BODY)
}).listen(Number(process.argv[2]), '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))
