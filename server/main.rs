fn main() {
    println!("lockstep");
}
