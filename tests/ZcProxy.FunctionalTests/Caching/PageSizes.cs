using System.IO.MemoryMappedFiles;
using System.Runtime.InteropServices;
using ZcProxy.Native;

namespace ZcProxy.Tests.Caching;

/// <summary>
/// Which of a file's cached pages sit in large folios: the file is mapped and each page touched (a cached page is mapped
/// without I/O), its page frame number read from /proc/self/pagemap and its flags from /proc/kpageflags (KPF_COMPOUND_HEAD,
/// KPF_COMPOUND_TAIL). Page frame numbers need CAP_SYS_ADMIN: without them the answer is (-1, -1).
/// </summary>
internal static class PageSizes
{
    private const int Page = 4096;
    private const ulong Present = 1UL << 63;
    private const ulong PfnMask = (1UL << 55) - 1;
    private const ulong Compound = (1UL << 15) | (1UL << 16);

    /// <summary>
    /// Whether the kernel's own readahead gives files in <paramref name="directory"/> large folios (ext4 does since Linux
    /// 6.16): an 8 MiB file written, dropped from the page cache and read back with plain reads. Null when the folios cannot
    /// be seen (no page frame numbers).
    /// </summary>
    public static bool? LargeFoliosIn(string directory)
    {
        var path = Path.Combine(directory, "folios.probe~");
        const int Length = 8 << 20;
        try
        {
            using (var write = new FileStream(path, FileMode.Create, FileAccess.Write))
            {
                write.Write(new byte[Length]);
                write.Flush(flushToDisk: true);
            }
            using (var read = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0))
            {
                Syscalls.Fadvise(read.SafeFileHandle, 0, 0, LinuxConstants.POSIX_FADV_DONTNEED);
                var buffer = new byte[1 << 20];
                while (read.Read(buffer) > 0) { }
            }
            var (present, small) = OfFileRange(path, 0, Length);
            return present < 0 ? null : small <= present / 2;
        }
        finally { File.Delete(path); }
    }

    /// <summary>(pages present in memory, of them in 4 KiB folios) of bytes [offset, +length) of the file (offset page-aligned).</summary>
    public static (long Present, long Small) OfFileRange(string path, long offset, long length)
    {
        using var map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        using var view = map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
        bool added = false;
        view.SafeMemoryMappedViewHandle.DangerousAddRef(ref added);
        try
        {
            nint first = view.SafeMemoryMappedViewHandle.DangerousGetHandle() + (nint)view.PointerOffset + (nint)offset;
            long pages = length / Page;
            using var pagemap = new FileStream("/proc/self/pagemap", FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
            using var flags = new FileStream("/proc/kpageflags", FileMode.Open, FileAccess.Read, FileShare.Read, bufferSize: 0);
            Span<byte> entry = stackalloc byte[8];
            long present = 0, small = 0;
            int sink = 0;
            for (long i = 0; i < pages; i++)
            {
                nint at = first + (nint)(i * Page);
                sink += Marshal.ReadByte(at);
                pagemap.Position = (long)((nuint)at / Page) * 8;
                pagemap.ReadExactly(entry);
                ulong e = MemoryMarshal.Read<ulong>(entry);
                if ((e & Present) == 0) continue;
                ulong pfn = e & PfnMask;
                if (pfn == 0) return (-1, -1);
                present++;
                flags.Position = (long)pfn * 8;
                flags.ReadExactly(entry);
                if ((MemoryMarshal.Read<ulong>(entry) & Compound) == 0) small++;
            }
            GC.KeepAlive(sink);
            return (present, small);
        }
        finally { if (added) view.SafeMemoryMappedViewHandle.DangerousRelease(); }
    }
}
