using System.Text;
using ZcProxy.Core.Diagnostics;

namespace ZcProxy.Tests.Diagnostics;

/// <summary>The access log's double buffer: what appending tells the writer, what the writer takes, and a full buffer.</summary>
public class AccessLogBufferTests
{
    private static byte[] Line(int length) => Encoding.ASCII.GetBytes(new string('x', length - 1) + "\n");

    [Fact]
    public void Append_SaysFirstThenAddedThenPassedHalf_ThenFull()
    {
        var buffer = new AccessLogBuffer(100);
        Assert.Equal(AccessLogBuffer.Appended.First, buffer.TryAppend(Line(30)));
        Assert.Equal(AccessLogBuffer.Appended.Added, buffer.TryAppend(Line(10)));      // 40 of 100
        Assert.Equal(AccessLogBuffer.Appended.PassedHalf, buffer.TryAppend(Line(20))); // 60: past half, once
        Assert.Equal(AccessLogBuffer.Appended.Added, buffer.TryAppend(Line(40)));      // exactly full
        Assert.Equal(AccessLogBuffer.Appended.Full, buffer.TryAppend(Line(1)));
    }

    [Fact]
    public void Take_GivesEveryLineInOrder_AndTheNextLineStartsANewBatch()
    {
        var buffer = new AccessLogBuffer(64);
        Assert.True(buffer.Take().Count == 0); // nothing yet
        buffer.TryAppend("a\n"u8);
        buffer.TryAppend("b\n"u8);
        var taken = buffer.Take();
        Assert.Equal("a\nb\n", Encoding.ASCII.GetString(taken));

        // While the writer holds the first buffer, lines go to the spare one; it is not taken until the first comes back.
        Assert.Equal(AccessLogBuffer.Appended.First, buffer.TryAppend("c\n"u8));
        Assert.True(buffer.Take().Count == 0);
        buffer.Return(taken);
        Assert.Equal("c\n", Encoding.ASCII.GetString(buffer.Take()));
    }

    [Fact]
    public void AFullBuffer_TakesLinesAgain_OnceTheWriterTookIt()
    {
        var buffer = new AccessLogBuffer(10);
        Assert.Equal(AccessLogBuffer.Appended.First, buffer.TryAppend(Line(10)));
        Assert.Equal(AccessLogBuffer.Appended.Full, buffer.TryAppend(Line(2)));
        var taken = buffer.Take();
        Assert.Equal(AccessLogBuffer.Appended.First, buffer.TryAppend(Line(2)));
        buffer.Return(taken);
        Assert.Equal(2, buffer.Take().Count);
    }
}
