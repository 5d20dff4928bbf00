// A redis-semaphore holder driven by tests/node_interop.rs over stdin/stdout.
// Usage: node holder.js <port> <mutex|semaphore|multi> <key> <limit> <permits> <identifier|->
// Prints one JSON line after a single try, then obeys lines on stdin:
// "release" (release, print {"released":true}, exit) or "exit" (exit holding).
const Redis = require('ioredis')
const { Mutex, Semaphore, MultiSemaphore } = require('redis-semaphore')
const readline = require('readline')

const [port, kind, key, limit, permits, identifier] = process.argv.slice(2)
const client = new Redis({ port: Number(port), host: '127.0.0.1', lazyConnect: false })
const options = { acquireTimeout: 200, acquireAttemptsLimit: 1, lockTimeout: 10000 }
if (identifier !== '-') {
  options.identifier = identifier
  options.acquiredExternally = true
}
const lock =
  kind === 'mutex' ? new Mutex(client, key, options)
  : kind === 'semaphore' ? new Semaphore(client, key, Number(limit), options)
  : new MultiSemaphore(client, key, Number(limit), Number(permits), options)

async function main() {
  let acquired = false
  try {
    acquired = await lock.tryAcquire()
  } catch (err) {
    acquired = false
  }
  console.log(JSON.stringify({ acquired, identifier: lock.identifier }))
  const lines = readline.createInterface({ input: process.stdin })
  for await (const line of lines) {
    if (line === 'release') {
      await lock.release()
      console.log(JSON.stringify({ released: true }))
    }
    break
  }
  await client.quit()
  process.exit(0)
}
main().catch((err) => {
  console.error(err)
  process.exit(1)
})
