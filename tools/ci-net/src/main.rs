fn main() {
    ci_net::main()
}
