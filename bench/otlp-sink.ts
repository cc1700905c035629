/** An OTLP/HTTP collector that keeps nothing: every export is read and answered 200, empty. */
import { createServer } from 'node:http'

createServer((req, res) => {
  req.resume()
  req.on('end', () => {
    res.writeHead(200, { 'content-type': 'application/x-protobuf', 'content-length': 0 })
    res.end()
  })
}).listen(Number(process.argv[2]), '127.0.0.1')
process.on('SIGTERM', () => process.exit(0))
