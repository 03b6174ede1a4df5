namespace ZcProxy.Core.Transport.Loops;

/// <summary>The owner of a <see cref="LoopSocket"/> that wants to hear of its hang-up or error (on the loop thread).</summary>
internal interface ILoopSocketTroubleHandler
{
    /// <summary>RDHUP, HUP or ERR reported for the first time (<paramref name="bits"/>: the new ones).</summary>
    void OnTrouble(uint bits);
}
