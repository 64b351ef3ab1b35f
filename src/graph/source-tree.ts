/**
 * The project's source files, as the graph sees them. The graph asks questions
 * through this interface and does no file I/O of its own; the build supplies a
 * real implementation (src/build/fs-source-tree.ts), tests may supply a map.
 */
export interface SourceTree {
  /** Is there a regular file at this project-relative path? */
  isFile(path: string): Promise<boolean>
  /** Project-relative paths of files matching a glob, sorted. bldr's state folder is never matched. */
  glob(pattern: string): Promise<string[]>
}
