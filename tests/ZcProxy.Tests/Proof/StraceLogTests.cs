namespace ZcProxy.Tests.Proof;

/// <summary>The strace output parser the proofs rely on, on lines captured from a real `strace -f -C -yy` run.</summary>
public class StraceLogTests
{
    private static readonly string[] Captured =
    [
        "16293 splice(224<TCPv6:[[::ffff:127.0.0.1]:44596->[::ffff:127.0.0.1]:39771]>, NULL, 228<pipe:[1144738]>, NULL, 1048576, SPLICE_F_MOVE|SPLICE_F_NONBLOCK <unfinished ...>",
        "16352 read(199<anon_inode:inotify>,  <unfinished ...>",
        "16293 <... splice resumed>)             = 98304",
        "16293 splice(227<pipe:[1144738]>, NULL, 217<TCP:[127.0.0.1:43639->127.0.0.1:41530]>, NULL, 98304, SPLICE_F_MOVE|SPLICE_F_NONBLOCK) = 98304",
        "16352 <... read resumed>\"\\1\\0\\0\\0\", 8192) = 32",
        "16293 splice(227<pipe:[1144738]>, NULL, 217<TCP:[127.0.0.1:43639->127.0.0.1:41530]>, NULL, 1048576, SPLICE_F_MOVE|SPLICE_F_NONBLOCK) = -1 EAGAIN (Resource temporarily unavailable)",
        "16372 sendfile(234<TCP:[127.0.0.1:43639->127.0.0.1:45882]>, 237</tmp/c/c6/b7/c6b7>, [4096] => [304096], 300000) = 300000",
        "16372 openat(AT_FDCWD</tmp>, \"/tmp/c/71/19/7119\", O_RDONLY|O_DIRECT|O_CLOEXEC) = 238</tmp/c/71/19/7119>",
        "16399 <... write resumed>) = 14", // began before strace attached: no start to join
        "% time     seconds  usecs/call     calls    errors syscall",
        "------ ----------- ----------- --------- --------- ----------------",
        " 96.43    0.104248         156       666        60 splice",
        "  2.08    0.002246         280         8           openat",
        "------ ----------- ----------- --------- --------- ----------------",
        "100.00    0.108107         154       700        62 total",
    ];

    [Fact]
    public void Parse_JoinsUnfinishedCallsPerPid_SumsReturnValues_AndReadsTheSummaryTable()
    {
        var log = StraceLog.Parse(Captured);

        Assert.Equal(["splice", "splice", "read", "splice", "sendfile", "openat"], log.Calls.Select(c => c.Name));
        Assert.Equal(98304 * 2, log.BytesOf(c => c.Name == "splice"));
        Assert.Equal(98304, log.BytesOf(c => c.Name == "splice" && StraceLog.IsSocketWithLocalPort(c.Argument(2), 43639)));
        Assert.Equal(0, log.BytesOf(c => c.Name == "splice" && StraceLog.IsSocketWithLocalPort(c.Argument(2), 39771)));
        Assert.Equal(300000, log.BytesOf(c => c.Name == "sendfile" && StraceLog.IsSocketWithLocalPort(c.Argument(0), 43639)));
        Assert.Equal(32, log.BytesOf(c => c.Name == "read"));
        Assert.Equal(238, log.Calls.Single(c => c.Name == "openat").Result);
        Assert.Equal(666, log.CallsOf("splice"));
        Assert.Equal(8, log.CallsOf("openat"));
        Assert.Equal(0, log.CallsOf("sendmsg"));
        Assert.False(log.SummaryCalls.ContainsKey("total"));
        Assert.StartsWith("% time", log.Summary);
    }
}
