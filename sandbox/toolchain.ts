/**
 * What of the host every isolating backend shows an action, read-only: the
 * toolchain under /usr, the top-level folders that are aliases of /usr on
 * merged-/usr systems, and the few files of /etc a compiler reads. bwrap and
 * docker mount the same list, so an action sees the same machine in both.
 */
import { existsSync, lstatSync, readlinkSync } from 'node:fs'

/** Top-level folders that are symlinks into /usr on merged-/usr systems (shown as the host has them). */
const USR_ALIASES = ['/bin', '/lib', '/lib32', '/lib64', '/sbin']
/** The toolchain's folders (/usr and its aliases), whether or not this host has each. */
export const TOOLCHAIN_FOLDERS = ['/usr', ...USR_ALIASES]
/** Files of /etc a toolchain reads: the dynamic linker's cache and Debian's alternatives (`cc` → gcc). */
const ETC_FILES = ['/etc/ld.so.cache', '/etc/ld.so.conf', '/etc/ld.so.conf.d', '/etc/alternatives']
/** What a command with network access needs to resolve names. */
export const NETWORK_ETC_FILES = ['/etc/resolv.conf', '/etc/hosts', '/etc/nsswitch.conf']

export interface ToolchainPath {
  path: string
  /** Set when the host has `path` as a symlink (to this target) rather than a folder. */
  symlinkTo?: string
}

/** The host paths of the toolchain that exist here, /usr first. */
export function toolchainPaths(): ToolchainPath[] {
  const paths: ToolchainPath[] = [{ path: '/usr' }]
  for (const p of USR_ALIASES) {
    const st = lstatSync(p, { throwIfNoEntry: false })
    if (!st) continue
    paths.push(st.isSymbolicLink() ? { path: p, symlinkTo: readlinkSync(p) } : { path: p })
  }
  for (const f of ETC_FILES) if (existsSync(f)) paths.push({ path: f })
  return paths
}
