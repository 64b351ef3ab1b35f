/** The schema of a digest in any frame or record read from outside. */
import { z } from 'zod'
import { isDigest } from './hasher.js'

export const digestSchema = z.string().refine(isDigest, { message: 'must be a 64-character lower-case hex BLAKE3 digest' })
