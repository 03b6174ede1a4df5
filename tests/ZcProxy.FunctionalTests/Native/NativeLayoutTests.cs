using System.Diagnostics;
using System.Globalization;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Loader;
using System.Text;
using Tmds.Linux;
using ZcProxy.Native;

namespace ZcProxy.Tests.Native;

/// <summary>
/// What the proxy hands the kernel (flag values, errno numbers, sizes and field offsets of the structs it passes by
/// pointer) checked against the C headers of x86_64 and arm64.
///
/// A table of C expressions is compiled by each architecture's gcc (`-S`: compiled only, nothing is run) and the
/// values are read from the assembly listing. They are compared with
/// - on the running architecture, the live values: <see cref="LinuxConstants"/>, Syscalls.POLL*, <see cref="Errno"/>
///   and the runtime's layout of epoll_event, msghdr, pollfd and <see cref="IoSegment"/> (as struct iovec);
/// - for each architecture, Tmds.LibC's assembly for it (runtimes/linux-x64 and linux-arm64 of the package, loaded
///   into a load context of its own: its constants are managed getters and its struct layouts come from metadata, so
///   any host can read them), plus our own declarations.
///
/// What the arm64 check proves: the values and layouts the proxy would use on arm64 (Tmds.LibC's linux-arm64
/// assembly, which a linux-arm64 build ships, and our own Errno, IoSegment and sendfile declaration, which are the
/// same on every 64-bit Linux) agree with arm64 glibc's and kernel's headers. It runs nothing on arm64: that the host
/// picks the arm64 assembly on an arm64 machine (NuGet's runtimes/ selection) and that the calls behave there is not
/// proven here.
/// </summary>
public sealed class NativeLayoutTests
{
    /// <summary>Struct sizes and offsets: C expression, Tmds.LibC type, field (null for the size).</summary>
    private static readonly (string C, string Type, string? Field)[] Layouts =
    [
        ("sizeof(struct epoll_event)", "epoll_event", null),
        ("offsetof(struct epoll_event, data)", "epoll_event", "data"),
        ("sizeof(struct msghdr)", "msghdr", null),
        ("offsetof(struct msghdr, msg_iov)", "msghdr", "<msg_iov>k__BackingField"),
        ("offsetof(struct msghdr, msg_iovlen)", "msghdr", "_msg_iovlen"),
        ("sizeof(struct iovec)", "iovec", null),
        ("sizeof(struct pollfd)", "pollfd", null),
        ("offsetof(struct pollfd, revents)", "pollfd", "<revents>k__BackingField"),
    ];

    /// <summary>Our own declarations whose layout is the same on every 64-bit Linux: C expression, the size we assume.</summary>
    private static readonly (string C, long Size)[] OwnLayouts =
    [
        ("sizeof(struct iovec)", Unsafe.SizeOf<IoSegment>()),  // IoSegment is passed as struct iovec to sendmsg
        ("sizeof(off_t)", sizeof(long)),                         // sendfile's offset (Libc.sendfile: long*)
        ("sizeof(size_t)", IntPtr.Size),                         // sendfile's count (nuint)
        // Syscalls.WriteSockAddr / ToEndPoint build and read sockaddr_in(6) by offset (connect, accept, getsockname).
        ("sizeof(struct sockaddr_in)", 16),
        ("offsetof(struct sockaddr_in, sin_port)", 2),
        ("offsetof(struct sockaddr_in, sin_addr)", 4),
        ("sizeof(struct sockaddr_in6)", 28),
        ("offsetof(struct sockaddr_in6, sin6_port)", 2),
        ("offsetof(struct sockaddr_in6, sin6_addr)", 8),
        ("offsetof(struct sockaddr_in6, sin6_scope_id)", 24),
    ];

    private static readonly string[] ConstantNames = typeof(LinuxConstants)
        .GetProperties(BindingFlags.Public | BindingFlags.Static).Select(p => p.Name).ToArray();

    private static readonly string[] PollNames = ["POLLIN", "POLLPRI", "POLLERR"];

    [CCompilerFact("x86_64-linux-gnu-gcc")]
    public void X64_TmdsLibCAndOwnDeclarations_MatchTheX64Headers() => CompareWithHeaders("linux-x64", "x86_64-linux-gnu-gcc");

    [CCompilerFact("aarch64-linux-gnu-gcc")]
    public void Arm64_TmdsLibCAndOwnDeclarations_MatchTheArm64Headers() => CompareWithHeaders("linux-arm64", "aarch64-linux-gnu-gcc");

    [CCompilerFact("gcc")]
    public void RunningArchitecture_LiveValuesAndLayouts_MatchTheHeaders()
    {
        var c = Compile("gcc", out _);
        var mismatches = new List<string>();
        foreach (var name in ConstantNames)
            Check(mismatches, name, c[name], Convert.ToInt64(typeof(LinuxConstants).GetProperty(name)!.GetValue(null), CultureInfo.InvariantCulture));
        foreach (var name in PollNames)
            Check(mismatches, name, c[name], Convert.ToInt64(typeof(Syscalls).GetProperty(name)!.GetValue(null), CultureInfo.InvariantCulture));
        foreach (var name in Enum.GetNames<Errno>())
            Check(mismatches, name, c[name], (long)Enum.Parse<Errno>(name));
        // The runtime's own layout of the structs as this process uses them (sizeof in stackalloc, field access).
        Check(mismatches, "sizeof(struct epoll_event)", c["sizeof(struct epoll_event)"], Unsafe.SizeOf<epoll_event>());
        Check(mismatches, "sizeof(struct msghdr)", c["sizeof(struct msghdr)"], Unsafe.SizeOf<msghdr>());
        Check(mismatches, "sizeof(struct pollfd)", c["sizeof(struct pollfd)"], Unsafe.SizeOf<pollfd>());
        Check(mismatches, "offsetof(struct epoll_event, data)", c["offsetof(struct epoll_event, data)"], (long)Marshal.OffsetOf<epoll_event>("data"));
        foreach (var (expression, size) in OwnLayouts) Check(mismatches, expression, c[expression], size);
        Assert.Empty(mismatches);
    }

    /// <summary>
    /// Without any compiler: the values that differ between the two architectures, transcribed from the kernel's UAPI
    /// headers, against Tmds.LibC's assembly for each (everything else the proxy uses is asm-generic, the same on both).
    /// </summary>
    [Theory]
    // O_DIRECT: include/uapi/asm-generic/fcntl.h `#define O_DIRECT 00040000` (x86_64 uses it as is);
    // arch/arm64/include/uapi/asm/fcntl.h `#define O_DIRECT 0200000`.
    // epoll_event: include/uapi/linux/eventpoll.h, `EPOLL_PACKED __attribute__((packed))` only `#ifdef __x86_64__`:
    // { __poll_t events; __u64 data; } is 12 bytes with data at 4 on x86_64, 16 bytes with data at 8 on arm64.
    [InlineData("linux-x64", 0x4000, 12, 4)]
    [InlineData("linux-arm64", 0x10000, 16, 8)]
    public void PerArchitectureValues_MatchTheKernelHeaders(string rid, int oDirect, int epollEventSize, int epollDataOffset)
    {
        var libc = TmdsLibC(rid);
        Assert.Equal(oDirect, Convert.ToInt64(libc.GetProperty("O_DIRECT")!.GetValue(null), CultureInfo.InvariantCulture));
        var epollEvent = libc.Assembly.GetType("Tmds.Linux.epoll_event")!;
        Assert.Equal(epollEventSize, Marshal.SizeOf(epollEvent));
        Assert.Equal(epollDataOffset, (long)Marshal.OffsetOf(epollEvent, "data"));
    }

    [Fact]
    public void RunningProcess_UsesTmdsLibCForItsArchitecture()
    {
        var expected = RuntimeInformation.ProcessArchitecture == Architecture.Arm64 ? 0x10000 : 0x4000;
        Assert.Equal(expected, LinuxConstants.O_DIRECT);
    }

    private static void CompareWithHeaders(string rid, string compiler)
    {
        var c = Compile(compiler, out var listing);
        Assert.True(c.Count > 40, listing);
        var libc = TmdsLibC(rid);
        var mismatches = new List<string>();
        foreach (var name in ConstantNames.Concat(PollNames))
        {
            // Flags are 32-bit patterns: Tmds.LibC types EPOLLET (bit 31) as a negative int, C as an unsigned 2^31.
            long managed = Convert.ToInt64(libc.GetProperty(name)!.GetValue(null), CultureInfo.InvariantCulture);
            Check(mismatches, name, c[name], managed < 0 && managed >= int.MinValue ? (uint)(int)managed : managed);
        }
        foreach (var name in Enum.GetNames<Errno>())
        {
            Check(mismatches, name, c[name], (long)Enum.Parse<Errno>(name));
            Check(mismatches, $"{name} (Tmds.LibC)", c[name], Convert.ToInt64(libc.GetProperty(name)!.GetValue(null), CultureInfo.InvariantCulture));
        }
        foreach (var (expression, typeName, field) in Layouts)
        {
            var type = libc.Assembly.GetType($"Tmds.Linux.{typeName}")!;
            long managed = field is null ? Marshal.SizeOf(type) : (long)Marshal.OffsetOf(type, field);
            Check(mismatches, $"{expression} (Tmds.LibC {rid})", c[expression], managed);
        }
        foreach (var (expression, size) in OwnLayouts) Check(mismatches, expression, c[expression], size);
        Assert.Empty(mismatches);
    }

    private static void Check(List<string> mismatches, string what, long c, long managed)
    {
        if (c != managed) mismatches.Add($"{what}: C says {c}, we use {managed}");
    }

    /// <summary>Tmds.Linux.LibC from the package's assembly for one runtime identifier, in a load context of its own.</summary>
    private static Type TmdsLibC(string rid)
    {
        var path = Path.Combine(AppContext.BaseDirectory, "runtimes", rid, "lib", "netstandard2.0", "Tmds.LibC.dll");
        Assert.True(File.Exists(path), $"{path} is missing: Tmds.LibC's per-architecture assemblies are copied by the build");
        var context = new AssemblyLoadContext($"Tmds.LibC {rid}", isCollectible: true);
        return context.LoadFromAssemblyPath(path).GetType("Tmds.Linux.LibC", throwOnError: true)!;
    }

    /// <summary>Every expression of the table, compiled for the compiler's architecture: expression → value.</summary>
    private static Dictionary<string, long> Compile(string compiler, out string listing)
    {
        var expressions = ConstantNames.Concat(PollNames).Concat(Enum.GetNames<Errno>())
            .Concat(Layouts.Select(l => l.C)).Concat(OwnLayouts.Select(l => l.C)).Distinct().ToList();
        var source = new StringBuilder("""
            #define _GNU_SOURCE
            #include <errno.h>
            #include <fcntl.h>
            #include <netinet/in.h>
            #include <poll.h>
            #include <stddef.h>
            #include <sys/epoll.h>
            #include <sys/eventfd.h>
            #include <sys/sendfile.h>
            #include <sys/socket.h>
            #include <sys/types.h>
            #include <sys/uio.h>
            const long long zc_values[] = {

            """);
        foreach (var e in expressions) source.Append("  (long long)(").Append(e).Append("),\n");
        source.Append("};\n");

        var dir = Directory.CreateTempSubdirectory("zc-layout-");
        try
        {
            var c = Path.Combine(dir.FullName, "layout.c");
            var s = Path.Combine(dir.FullName, "layout.s");
            File.WriteAllText(c, source.ToString());
            var info = new ProcessStartInfo(compiler) { RedirectStandardError = true, UseShellExecute = false };
            foreach (var a in new[] { "-S", "-O0", "-o", s, c }) info.ArgumentList.Add(a);
            using var gcc = Process.Start(info)!;
            var errors = gcc.StandardError.ReadToEnd();
            Assert.True(gcc.WaitForExit(60_000), $"{compiler} did not finish");
            Assert.True(gcc.ExitCode == 0, $"{compiler} failed: {errors}");
            listing = File.ReadAllText(s);
            var values = ReadArray(listing, "zc_values");
            Assert.True(values.Count == expressions.Count, $"read {values.Count} values for {expressions.Count} expressions from:\n{listing}");
            return expressions.Zip(values).ToDictionary(p => p.First, p => p.Second);
        }
        finally { dir.Delete(recursive: true); }
    }

    /// <summary>
    /// The 8-byte elements of an initialised array in gcc's assembly listing: `.quad N` on x86_64, `.xword N` on
    /// arm64, and `.zero K` for a run of K/8 zeros.
    /// </summary>
    internal static List<long> ReadArray(string listing, string symbol)
    {
        var values = new List<long>();
        bool inside = false;
        foreach (var raw in listing.Split('\n'))
        {
            var line = raw.Trim();
            if (line == symbol + ":") { inside = true; continue; }
            if (!inside) continue;
            var parts = line.Split((char[])['\t', ' '], 2, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2 && parts[0] is ".quad" or ".xword" or ".8byte" or ".dword")
                values.Add(long.Parse(parts[1].Trim(), CultureInfo.InvariantCulture));
            else if (parts.Length == 2 && parts[0] == ".zero")
                values.AddRange(Enumerable.Repeat(0L, int.Parse(parts[1].Trim(), CultureInfo.InvariantCulture) / 8));
            else break;
        }
        return values;
    }
}
