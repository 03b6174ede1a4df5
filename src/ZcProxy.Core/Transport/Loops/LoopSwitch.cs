using System.Runtime.CompilerServices;

namespace ZcProxy.Core.Transport.Loops;

/// <summary>
/// <c>await loop.SwitchTo()</c>: continues on the loop's thread (at once when already there). Code that owns sockets
/// of one loop runs there, so that its waits and the loop's wake-ups never race (a wake posted to the loop runs after
/// the code it wakes has armed its wait).
/// </summary>
internal static class LoopSwitch
{
    public static Awaitable SwitchTo(this EventLoop loop) => new(loop);

    internal readonly struct Awaitable(EventLoop loop) : ICriticalNotifyCompletion
    {
        public Awaitable GetAwaiter() => this;
        public bool IsCompleted => loop.IsLoopThread;
        public void GetResult() { }
        public void OnCompleted(Action continuation) => loop.Post(static s => ((Action)s!)(), continuation);
        public void UnsafeOnCompleted(Action continuation) => loop.Post(static s => ((Action)s!)(), continuation);
    }
}
